"""Reading and writing a contract: ``dataset.yaml`` (and the JSON copy beside a registered model)
into a checked :class:`~.spec.Contract`, naming the key of any problem, and back.

:func:`load` is a home's contract: its ``dataset.yaml``, or the lab's contract
(:func:`.lab.lab`) when the home has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .._params import declared
from ..exceptions import ContractError
from ..home import Home
from .lab import lab
from .spec import (BOOLEAN, CATEGORICAL, FLOAT, FORMAT, INTEGER, TYPES, Contract, CsvDialect, Dropped, Feature, Gate,
                   Source, Target, _text)

#: Name of the contract file at the root of a home.
FILE_NAME = "dataset.yaml"
_FEATURE_KEYS = {"type", "description", "missing", "on_missing", "range", "clip", "values", "strip", "case",
                 "unseen", "true_values", "false_values"}
_TOP_KEYS = {"format", "name", "description", "source", "id", "target", "features", "dropped", "gate", "examples"}


def _tuple_of_str(value: Any, what: str) -> tuple[str, ...]:
    """A list of labels or tokens as text (a lone value is a list of one; YAML's numbers and booleans spelled)."""
    if value is None:
        return ()
    if isinstance(value, (str, int, float, bool)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ContractError(f"{what} must be a list, got {value!r}", key=what)
    out = []
    for v in value:
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, (str, int, float)):
            raise ContractError(f"{what} holds {v!r}; use text values", key=what)
        out.append(_text(v))
    return tuple(out)


def _pair(value: Any, what: str) -> tuple[float | None, float | None]:
    """``[low, high]`` (null for no bound) as two floats or None."""
    if value is None:
        return None, None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ContractError(f"{what} must be [low, high] (null for no bound), got {value!r}", key=what)
    out = []
    for v in value:
        if v is None:
            out.append(None)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ContractError(f"{what} bounds must be numbers or null, got {v!r}", key=what)
        else:
            out.append(float(v))
    return out[0], out[1]


def from_dict(d: Mapping[str, Any], *, where: str = "dataset.yaml") -> Contract:
    """Build a :class:`Contract` from plain data (as read from YAML), naming the key of any problem.

    Parameters
    ----------
    d : mapping
        The contract as plain data (``Contract.to_dict()`` gives it back).
    where : str, default="dataset.yaml"
        What the data came from, named in every error.

    Returns
    -------
    Contract

    Raises
    ------
    ContractError
        An unknown key, a value of the wrong kind, or an inconsistent contract; ``.key`` names it.

    Examples
    --------
    >>> from_dict({"source": {"path": "customers.csv"}, "target": {"column": "left", "positive": ["yes"],
    ...            "negative": ["no"]}, "features": {"tenure": "integer"}}).feature_names
    ('tenure',)
    """
    if not isinstance(d, Mapping):
        raise ContractError(f"{where} must be a mapping (name:, source:, target:, features: ...)", key="")
    unknown = sorted(set(d) - _TOP_KEYS, key=str)
    if unknown:
        raise ContractError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; the keys are "
                            f"{', '.join(sorted(_TOP_KEYS))}", key=str(unknown[0]))
    if d.get("format", FORMAT) != FORMAT:
        raise ContractError(f"{where}: format {d.get('format')!r} is not supported (this version reads {FORMAT})",
                            key="format")
    feats_raw = d.get("features")
    source, target = _source_from(d.get("source"), where), _target_from(d.get("target"), where)
    if not isinstance(feats_raw, Mapping) or not feats_raw:
        raise ContractError(f"{where}: features must map each feature column to its definition", key="features")
    features = tuple(_feature_from(str(name), spec, where) for name, spec in feats_raw.items())
    ids = _tuple_of_str(d.get("id"), "id")
    dropped, gate = _dropped_from(d.get("dropped"), where), _gate_from(d.get("gate"), where)
    examples = d.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, Mapping) for e in examples):
        raise ContractError(f"{where}: examples must be a list of requests (mappings)", key="examples")
    return Contract(name=str(d.get("name") or "dataset"), source=source, target=target, features=features, id=ids,
                    dropped=dropped, gate=gate, examples=tuple(dict(e) for e in examples),
                    description=str(d.get("description") or ""))


def _source_from(src: Any, where: str) -> Source:
    src = src or {"generator": "lab"}
    if not isinstance(src, Mapping) or set(src) - {"generator", "path", "csv"} or \
            len(set(src) & {"generator", "path"}) != 1 or ("csv" in src and "path" not in src):
        raise ContractError(f"{where}: source must be either {{path: FILE_OR_GLOB}} or {{generator: lab}} (a CSV "
                            "file may add csv: {sep: ';', decimal: ','})", key="source")
    if "generator" in src:
        if src["generator"] != "lab":
            raise ContractError(f"{where}: source.generator {src['generator']!r} is unknown; the only generator "
                                "is lab", key="source")
        return Source(generator="lab")
    if not isinstance(src["path"], str) or not src["path"].strip():
        raise ContractError(f"{where}: source.path must be a file name or glob", key="source")
    try:
        return Source(generator=None, path=src["path"].strip(), csv=_dialect_from(src.get("csv")))
    except ContractError as exc:
        raise ContractError(f"{where}: {exc}", key=exc.key) from None


def _dialect_from(raw: Any) -> CsvDialect:
    """``csv: {sep: ..., decimal: ...}`` (each key optional; the lab's comma and dot by default)."""
    if raw is None:
        return CsvDialect()
    if not isinstance(raw, Mapping) or set(raw) - {"sep", "decimal"}:
        raise ContractError("source.csv takes sep (one of ',', ';', '\\t', '|') and decimal ('.' or ',')",
                            key="source.csv")
    return CsvDialect(**{k: str(v) for k, v in raw.items()})


def _target_from(tgt: Any, where: str) -> Target:
    if not isinstance(tgt, Mapping) or "column" not in tgt:
        raise ContractError(f"{where}: target needs column:, positive: and negative:", key="target")
    if set(tgt) - {"column", "positive", "negative"}:
        raise ContractError(f"{where}: target takes column, positive and negative", key="target")
    return Target(_text(tgt["column"]), _tuple_of_str(tgt.get("positive"), "target.positive"),
                  _tuple_of_str(tgt.get("negative"), "target.negative"))


def _dropped_from(items: Any, where: str) -> tuple[Dropped, ...]:
    dropped = []
    for i, item in enumerate(items or []):
        if isinstance(item, str):
            dropped.append(Dropped(item, ""))
        elif isinstance(item, Mapping) and "column" in item and set(item) <= {"column", "reason"}:
            dropped.append(Dropped(_text(item["column"]), str(item.get("reason") or "")))
        else:
            raise ContractError(f"{where}: dropped[{i}] must be {{column: NAME, reason: WHY}}", key="dropped")
    return tuple(dropped)


def _gate_from(gate_raw: Any, where: str) -> Gate:
    """The gate's settings, each value checked by its declaration on :class:`~.spec.Gate` (a YAML null is None)."""
    gate_raw = gate_raw or {}
    settings = {p.name: p for p in declared(Gate)}
    if not isinstance(gate_raw, Mapping) or set(gate_raw) - set(settings):
        raise ContractError(f"{where}: gate takes {', '.join(settings)}", key="gate")
    for key, value in gate_raw.items():
        p = settings[key]
        if p.refusal(value) is not None:
            accepts = p.describe(none=False) + (" or null" if p.optional else "")
            raise ContractError(f"{where}: gate.{key} must be {accepts}, got {value!r}", key=f"gate.{key}")
    return Gate(**{key: settings[key].coerce(value) for key, value in gate_raw.items()})


def _feature_from(name: str, spec: Any, where: str) -> Feature:
    """One feature from its definition (a mapping, or just its type), refusing keys that do not apply."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ContractError(f"{where}: features.{name} needs a type ({', '.join(TYPES)})", key=name)
    unknown = sorted(map(str, set(spec) - _FEATURE_KEYS))
    if unknown:
        hint = " (an unquoted yes/no/true/false key reads as a boolean in YAML: quote it)" \
            if any(isinstance(k, bool) for k in spec) else ""
        raise ContractError(f"{where}: features.{name}: unknown key(s) {', '.join(unknown)}{hint}; the keys "
                            f"are {', '.join(sorted(_FEATURE_KEYS))}", key=name)
    kind = spec["type"]
    kwargs: dict[str, Any] = {"name": name, "type": kind}
    if "description" in spec:
        kwargs["description"] = str(spec["description"] or "")
    if "missing" in spec:
        kwargs["missing"] = _tuple_of_str(spec["missing"], f"features.{name}.missing")
    if "on_missing" in spec:
        kwargs["on_missing"] = spec["on_missing"]
    if kind in (INTEGER, FLOAT):
        kwargs["low"], kwargs["high"] = _pair(spec.get("range"), f"features.{name}.range")
        kwargs["clip_low"], kwargs["clip_high"] = _pair(spec.get("clip"), f"features.{name}.clip")
        extra = set(spec) & {"values", "strip", "case", "unseen", "true_values", "false_values"}
    elif kind == BOOLEAN:
        if "true_values" in spec:
            kwargs["true_values"] = _tuple_of_str(spec["true_values"], f"features.{name}.true_values")
        if "false_values" in spec:
            kwargs["false_values"] = _tuple_of_str(spec["false_values"], f"features.{name}.false_values")
        extra = set(spec) & {"values", "strip", "case", "unseen", "range", "clip"}
    elif kind == CATEGORICAL:
        kwargs["values"] = _tuple_of_str(spec.get("values"), f"features.{name}.values")
        for key in ("strip", "case", "unseen"):
            if key in spec:
                kwargs[key] = spec[key]
        if not isinstance(kwargs.get("strip", True), bool):
            raise ContractError(f"{where}: features.{name}.strip must be true or false", key=name)
        extra = set(spec) & {"range", "clip", "true_values", "false_values"}
    else:
        raise ContractError(f"{where}: features.{name}: type {kind!r} is not one of {', '.join(TYPES)}", key=name)
    if extra:
        raise ContractError(f"{where}: features.{name}: {', '.join(sorted(extra))} do(es) not apply to a {kind} "
                            "feature", key=name)
    return Feature(**kwargs)


def path_in(home_root: Path) -> Path:
    """Where a home's contract file is: ``dataset.yaml`` at its root."""
    return Path(home_root) / FILE_NAME


def load_file(path: str | Path) -> Contract:
    """Read and check a contract file.

    Raises
    ------
    ContractError
        The file cannot be read, is not YAML, or the contract is not valid (the message names the key).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path} does not exist: `churn init --data FILE --target COLUMN` writes one",
                            path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", path=str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", path=str(path)) from None
    try:
        return from_dict(raw, where=str(path))
    except ContractError as exc:
        exc.path = str(path)
        raise


def load(home: Any = None) -> Contract:
    """The contract of a home: its ``dataset.yaml``, or the lab's contract when it has none.

    Parameters
    ----------
    home : Home or path, optional
        Default: the home resolved from the environment (``CHURN_HOME``, the marker, the working directory).

    Returns
    -------
    Contract

    Raises
    ------
    ContractError
        The home's ``dataset.yaml`` cannot be read or is not a valid contract.
    """
    home = Home.resolve(home)
    path = path_in(home.root)
    if not path.exists():
        return lab()
    return load_file(path)


def to_json(contract: Contract) -> str:
    """The contract as canonical JSON (the copy kept beside a registered model)."""
    return json.dumps(contract.to_dict(), indent=1, ensure_ascii=False) + "\n"


def from_json(text: str, *, where: str = "contract copy") -> Contract:
    """Read a contract from its JSON copy (:func:`to_json`), naming ``where`` in any error.

    Raises
    ------
    ContractError
        Not JSON, or not a valid contract.
    """
    try:
        return from_dict(json.loads(text), where=where)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{where} is not valid JSON ({exc.msg})", key="") from None


