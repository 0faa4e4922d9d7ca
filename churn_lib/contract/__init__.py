"""The dataset contract: the one source of truth about the data.

A contract (``dataset.yaml`` at the home's root, :func:`load`) says where the
data comes from (a CSV file or glob, or the lab's generator), which column(s)
name a customer, which column is the target and which of its labels mean
"churned", and, per feature, its type (integer, float, boolean, categorical),
the tokens that mean "missing" and what to do with a missing value, its valid
range or its allowed values, how text is normalised and what an unseen
category gets. Dropped columns are listed with the reason, and the gate's
dataset-specific floors live here too. A home without the file is the lab's
home: :func:`lab` is the lab's five features, bit for bit the product's
behaviour before contracts existed.

Every stage derives what it checks from here, and nothing else in the code
names a column: the quality rules and the batch-scoring rejects use
:func:`check_frame` (the one vectorised validator), the API builds its request
models from the :class:`Feature` definitions, the prediction-log decoder, the
drift profiles and the simulator read the feature types. A registered model
carries a copy of the contract it was trained on (its sha256 in the registry
entry), so the service validates requests against the served model's contract.

Why not pandera for the frame rules: batch scoring needs, per row, the reason
it was rejected, at a million rows a second, and the quality stage needs each
rule's count per column against a threshold. Both come straight out of the
boolean masks below (a few numpy passes per column); a schema library would
re-derive the same masks and then report them in a shape we would convert back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..exceptions import ContractError

#: Name of the contract file at the root of a home.
FILE_NAME = "dataset.yaml"
FORMAT = 1

INTEGER, FLOAT, BOOLEAN, CATEGORICAL = "integer", "float", "boolean", "categorical"
TYPES = (INTEGER, FLOAT, BOOLEAN, CATEGORICAL)
#: Types the model sees as numbers (a boolean is 0/1).
NUMERIC_TYPES = (INTEGER, FLOAT, BOOLEAN)
CASES = ("none", "lower", "upper")
#: What an unseen category gets: ``reject`` (a quality violation, 422 at the API, a rejected
#: row in batch scoring) or ``ignore`` (accepted; the model scores it as "no category").
UNSEEN = ("reject", "ignore")
#: What a missing value gets: ``drop`` (the row is dropped at preparation, the field is
#: required at the API) or ``impute`` (kept; the model fills it: median / a "missing" category).
ON_MISSING = ("drop", "impute")

#: The category a missing categorical value becomes inside the model (``on_missing: impute``).
MISSING_CATEGORY = "(missing)"
#: Boolean spellings understood when the contract gives none (compared stripped, case-folded).
TRUE_TOKENS = ("1", "true", "yes", "y", "t")
FALSE_TOKENS = ("0", "false", "no", "n", "f")
#: Keys of an API request that are not features: no column may take these names.
RESERVED = ("request_id",)
#: Longest text accepted for an id or category value.
MAX_TEXT_LENGTH = 128

_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")


# --- the definitions ---------------------------------------------------------------

@dataclass(frozen=True)
class Feature:
    """One feature column and everything the stages check about it.

    Attributes
    ----------
    name : str
    type : {"integer", "float", "boolean", "categorical"}
    missing : tuple of str
        Tokens meaning "no value", compared after stripping spaces (default: the empty field).
    on_missing : {"drop", "impute"}
    low, high : float, optional
        Inclusive valid range of a number (None: unbounded on that side).
    clip_low, clip_high : float, optional
        Cleaning: numbers beyond are set to these bounds before the range check.
    values : tuple of str
        Allowed (normalised) values of a categorical feature.
    strip : bool
        Strip surrounding spaces of categories.
    case : {"none", "lower", "upper"}
        Case normalisation of categories.
    unseen : {"reject", "ignore"}
    true_values, false_values : tuple of str
        Spellings of a boolean (compared stripped and case-folded).
    description : str
    """

    name: str
    type: str
    missing: tuple[str, ...] = ("",)
    on_missing: str = "drop"
    low: float | None = None
    high: float | None = None
    clip_low: float | None = None
    clip_high: float | None = None
    values: tuple[str, ...] = ()
    strip: bool = True
    case: str = "none"
    unseen: str = "reject"
    true_values: tuple[str, ...] = TRUE_TOKENS
    false_values: tuple[str, ...] = FALSE_TOKENS
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        """True for the types the model reads as numbers (integer, float, boolean)."""
        return self.type in NUMERIC_TYPES

    @property
    def imputed(self) -> bool:
        return self.on_missing == "impute"

    def normalise(self, value: Any) -> str:
        """A category as it is compared and stored: stripped and case-normalised.

        Examples
        --------
        >>> Feature("region", CATEGORICAL, case="upper").normalise(" na ")
        'NA'
        """
        text = str(value)
        if self.strip:
            text = text.strip()
        if self.case == "lower":
            return text.lower()
        if self.case == "upper":
            return text.upper()
        return text

    def boolean(self, value: Any) -> bool | None:
        """The boolean a value spells (None when it spells neither)."""
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {1: True, 0: False}.get(value) if value in (0, 1) else None
        text = str(value).strip().casefold()
        if text in {t.casefold() for t in self.true_values}:
            return True
        if text in {t.casefold() for t in self.false_values}:
            return False
        return None

    def range_text(self, kind: str | None = None) -> str:
        """The valid range in words: ``0..200``, ``>= 0``, ``any``; with ``kind``: ``a JSON integer
        from 0 to 200``, ``a JSON integer >= 0``, ``any JSON integer``."""
        low, high = (None if v is None else _num(v) for v in (self.low, self.high))
        a = f"a {kind} " if kind else ""
        if low is not None and high is not None:
            return f"{a}from {low} to {high}" if kind else f"{low}..{high}"
        if low is not None or high is not None:
            return f"{a}{'>=' if low is not None else '<='} {low if low is not None else high}"
        return f"any {kind}" if kind else "any"

    def allows(self, category: str) -> bool:
        """True when a normalised category is accepted (listed, or unseen ones are ignored)."""
        return self.unseen == "ignore" or category in self.values


@dataclass(frozen=True)
class Target:
    """The target column and which of its labels mean churned (1) and stayed (0)."""

    column: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def label_text(self) -> str:
        return f"{'/'.join(self.positive)} (churned) or {'/'.join(self.negative)} (stayed)"

    def outcome(self, value: Any) -> int | None:
        """1 for a churned label, 0 for a stayed one; also 1/0 and true/false; None for anything else."""
        if isinstance(value, bool):
            return int(value)
        if value is None or (isinstance(value, float) and value != value):
            return None
        text = str(value).strip()
        if _label_matcher(self.positive)(text):
            return 1
        if _label_matcher(self.negative)(text):
            return 0
        folded = text.casefold()
        if folded in ("1", "1.0", "true"):
            return 1
        if folded in ("0", "0.0", "false"):
            return 0
        return None


@dataclass(frozen=True)
class Source:
    """Where stage 01 takes the data from: the lab's generator or a CSV file / glob."""

    generator: str | None = "lab"
    path: str | None = None

    @property
    def is_generator(self) -> bool:
        return self.generator is not None

    def describe(self) -> str:
        return f"the {self.generator} generator" if self.is_generator else f"the file(s) {self.path}"


@dataclass(frozen=True)
class Dropped:
    """A column of the source that no stage uses, and why."""

    column: str
    reason: str


@dataclass(frozen=True)
class Gate:
    """Dataset-specific gate defaults (a train parameter left at None takes these)."""

    min_f1: float | None = None
    baseline_margin: float = 0.02
    regression_tolerance: float = 0.02


@dataclass(frozen=True)
class Contract:
    """What a data set is: source, id, target, features, dropped columns, gate defaults."""

    name: str
    source: Source
    target: Target
    features: tuple[Feature, ...]
    id: tuple[str, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    gate: Gate = field(default_factory=Gate)
    examples: tuple[dict[str, Any], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        _check_contract(self)

    # --- names ---------------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> tuple[Feature, ...]:
        """Features the model reads as numbers (integer, float, boolean), in order."""
        return tuple(f for f in self.features if f.is_numeric)

    @property
    def categorical(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == CATEGORICAL)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a raw file must have, in order: id(s), features, target."""
        return (*self.id, *self.feature_names, self.target.column)

    @property
    def known_columns(self) -> tuple[str, ...]:
        return (*self.columns, *(d.column for d in self.dropped))

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise ContractError(f"no feature {name!r} in the contract (features: {', '.join(self.feature_names)})",
                            name=name)

    @property
    def is_lab(self) -> bool:
        return self == lab()

    # --- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain data (what ``dataset.yaml`` and the model's copy hold)."""
        src = {"generator": self.source.generator} if self.source.is_generator else {"path": self.source.path}
        out: dict[str, Any] = {"format": FORMAT, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["source"] = src
        out["id"] = list(self.id)
        out["target"] = {"column": self.target.column, "positive": list(self.target.positive),
                         "negative": list(self.target.negative)}
        out["features"] = {f.name: _feature_dict(f) for f in self.features}
        out["dropped"] = [{"column": d.column, "reason": d.reason} for d in self.dropped]
        out["gate"] = asdict(self.gate)
        if self.examples:
            out["examples"] = [dict(e) for e in self.examples]
        return out

    def sha256(self) -> str:
        """Fingerprint of the contract's content (canonical JSON, not the file's bytes); computed once."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        # cached in the instance's __dict__ (a frozen dataclass forbids attribute assignment, not this)
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def example(self) -> dict[str, Any]:
        """One request that this contract accepts (the first example, or one built from the definitions)."""
        if self.examples:
            return {k: v for k, v in self.examples[0].items() if k != "request_id"}
        row: dict[str, Any] = {}
        for f in self.features:
            row[f.name] = _example_value(f)
        for col in self.id:
            row[col] = "customer-1"
        return row


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _example_value(f: Feature) -> Any:
    if f.type == CATEGORICAL:
        return f.values[0] if f.values else "value"
    if f.type == BOOLEAN:
        return False
    low = f.low if f.low is not None else (0.0 if f.high is None or f.high >= 0 else f.high)
    high = f.high if f.high is not None else low + 10.0
    mid = (low + high) / 2 if math.isfinite(low + high) else low
    value = max(low, min(high, 0.0 if low <= 0 <= high and high - low > 1e6 else mid))
    return int(round(value)) if f.type == INTEGER else round(float(value), 2)


def _bound(f: Feature, v: float | None) -> float | int | None:
    """A bound in its canonical spelling (an integer feature's as an integer), so the sha256 is stable."""
    if v is None:
        return None
    return int(v) if f.type == INTEGER and float(v).is_integer() else float(v)


def _feature_dict(f: Feature) -> dict[str, Any]:
    d: dict[str, Any] = {"type": f.type}
    if f.description:
        d["description"] = f.description
    d["missing"] = list(f.missing)
    d["on_missing"] = f.on_missing
    if f.type in (INTEGER, FLOAT):
        d["range"] = [_bound(f, f.low), _bound(f, f.high)]
        if f.clip_low is not None or f.clip_high is not None:
            d["clip"] = [_bound(f, f.clip_low), _bound(f, f.clip_high)]
    elif f.type == BOOLEAN:
        d["true_values"] = list(f.true_values)
        d["false_values"] = list(f.false_values)
    else:
        d["values"] = list(f.values)
        d["strip"] = f.strip
        d["case"] = f.case
        d["unseen"] = f.unseen
    return d


# --- checking a contract -----------------------------------------------------------

def _check_contract(c: Contract) -> None:
    where = f"contract {c.name!r}"
    if not c.features:
        raise ContractError(f"{where} has no features: list at least one under features:", key="features")
    names = [*c.id, *c.feature_names, c.target.column, *(d.column for d in c.dropped)]
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ContractError(f"{where}: column name {name!r} must be 1-128 printable characters", key=str(name))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError(f"{where}: column(s) {', '.join(dupes)} appear more than once (as id, feature, "
                            "target or dropped): give each column one role", key=dupes[0])
    clash = [n for n in names if n in RESERVED]
    if clash:
        raise ContractError(f"{where}: a column may not be called {clash[0]!r}: the API uses that name; rename "
                            "the column in the file", key=clash[0])
    if not c.target.positive or not c.target.negative:
        raise ContractError(f"{where}: target.positive and target.negative each need at least one label",
                            key="target")
    overlap = {p.strip().casefold() for p in c.target.positive} & {n.strip().casefold() for n in c.target.negative}
    if overlap:
        raise ContractError(f"{where}: target label(s) {sorted(overlap)} are both positive and negative",
                            key="target")
    for f in c.features:
        fw = f"{where}: feature {f.name!r}"
        if f.type not in TYPES:
            raise ContractError(f"{fw}: type {f.type!r} is not one of {', '.join(TYPES)}", key=f.name)
        if f.on_missing not in ON_MISSING:
            raise ContractError(f"{fw}: on_missing {f.on_missing!r} is not one of {', '.join(ON_MISSING)}",
                                key=f.name)
        for bound in (f.low, f.high, f.clip_low, f.clip_high):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                      or not math.isfinite(bound)):
                raise ContractError(f"{fw}: range and clip bounds must be finite numbers or null, got {bound!r}",
                                    key=f.name)
        if f.low is not None and f.high is not None and f.low > f.high:
            raise ContractError(f"{fw}: range [{f.low}, {f.high}] is empty (low > high)", key=f.name)
        if f.type == CATEGORICAL:
            if f.case not in CASES:
                raise ContractError(f"{fw}: case {f.case!r} is not one of {', '.join(CASES)}", key=f.name)
            if f.unseen not in UNSEEN:
                raise ContractError(f"{fw}: unseen {f.unseen!r} is not one of {', '.join(UNSEEN)}", key=f.name)
            if f.unseen == "reject" and not f.values:
                raise ContractError(f"{fw}: unseen: reject needs the allowed values (values: [...]); or use "
                                    "unseen: ignore", key=f.name)
            bad = [v for v in f.values if f.normalise(v) != v]
            if bad:
                raise ContractError(f"{fw}: values must be written normalised ({f.case} case, stripped): "
                                    f"{bad[0]!r} should be {f.normalise(bad[0])!r}", key=f.name)
            if len(set(f.values)) != len(f.values):
                raise ContractError(f"{fw}: values repeat", key=f.name)
            if any(len(v) > MAX_TEXT_LENGTH or not v for v in f.values):
                raise ContractError(f"{fw}: values must be 1 to {MAX_TEXT_LENGTH} characters", key=f.name)
            if MISSING_CATEGORY in f.values:
                raise ContractError(f"{fw}: {MISSING_CATEGORY!r} is reserved for missing values", key=f.name)
        if f.type == BOOLEAN:
            t = {v.strip().casefold() for v in f.true_values}
            fl = {v.strip().casefold() for v in f.false_values}
            if not t or not fl or t & fl:
                raise ContractError(f"{fw}: true and false need distinct spellings", key=f.name)


# --- reading and writing dataset.yaml ------------------------------------------------

def _tuple_of_str(value: Any, what: str) -> tuple[str, ...]:
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


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _pair(value: Any, what: str) -> tuple[float | None, float | None]:
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


_FEATURE_KEYS = {"type", "description", "missing", "on_missing", "range", "clip", "values", "strip", "case",
                 "unseen", "true_values", "false_values"}
_TOP_KEYS = {"format", "name", "description", "source", "id", "target", "features", "dropped", "gate", "examples"}


def from_dict(d: Mapping[str, Any], *, where: str = "dataset.yaml") -> Contract:
    """Build a :class:`Contract` from plain data (as read from YAML), naming the key of any problem.

    Raises
    ------
    ContractError
    """
    if not isinstance(d, Mapping):
        raise ContractError(f"{where} must be a mapping (name:, source:, target:, features: ...)", key="")
    unknown = sorted(set(d) - _TOP_KEYS)
    if unknown:
        raise ContractError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; the keys are "
                            f"{', '.join(sorted(_TOP_KEYS))}", key=str(unknown[0]))
    if d.get("format", FORMAT) != FORMAT:
        raise ContractError(f"{where}: format {d.get('format')!r} is not supported (this version reads {FORMAT})",
                            key="format")
    src = d.get("source") or {"generator": "lab"}
    if not isinstance(src, Mapping) or set(src) - {"generator", "path"} or len(src) != 1:
        raise ContractError(f"{where}: source must be either {{path: FILE_OR_GLOB}} or {{generator: lab}}",
                            key="source")
    if "generator" in src:
        if src["generator"] != "lab":
            raise ContractError(f"{where}: source.generator {src['generator']!r} is unknown; the only generator "
                                "is lab", key="source")
        source = Source(generator="lab")
    else:
        if not isinstance(src["path"], str) or not src["path"].strip():
            raise ContractError(f"{where}: source.path must be a file name or glob", key="source")
        source = Source(generator=None, path=src["path"].strip())
    tgt = d.get("target")
    if not isinstance(tgt, Mapping) or "column" not in tgt:
        raise ContractError(f"{where}: target needs column:, positive: and negative:", key="target")
    if set(tgt) - {"column", "positive", "negative"}:
        raise ContractError(f"{where}: target takes column, positive and negative", key="target")
    target = Target(_text(tgt["column"]), _tuple_of_str(tgt.get("positive"), "target.positive"),
                    _tuple_of_str(tgt.get("negative"), "target.negative"))
    feats_raw = d.get("features")
    if not isinstance(feats_raw, Mapping) or not feats_raw:
        raise ContractError(f"{where}: features must map each feature column to its definition", key="features")
    features = []
    for name, spec in feats_raw.items():
        features.append(_feature_from(str(name), spec, where))
    ids = _tuple_of_str(d.get("id"), "id")
    dropped = []
    for i, item in enumerate(d.get("dropped") or []):
        if isinstance(item, str):
            dropped.append(Dropped(item, ""))
        elif isinstance(item, Mapping) and "column" in item and set(item) <= {"column", "reason"}:
            dropped.append(Dropped(_text(item["column"]), str(item.get("reason") or "")))
        else:
            raise ContractError(f"{where}: dropped[{i}] must be {{column: NAME, reason: WHY}}", key="dropped")
    gate_raw = d.get("gate") or {}
    if not isinstance(gate_raw, Mapping) or set(gate_raw) - {"min_f1", "baseline_margin", "regression_tolerance"}:
        raise ContractError(f"{where}: gate takes min_f1, baseline_margin and regression_tolerance", key="gate")
    gate_kwargs = {}
    for key in ("min_f1", "baseline_margin", "regression_tolerance"):
        if key in gate_raw:
            v = gate_raw[key]
            if (v is None and key == "min_f1") or (not isinstance(v, bool) and isinstance(v, (int, float))
                                                   and 0 <= v <= 1):
                gate_kwargs[key] = None if v is None else float(v)
            else:
                raise ContractError(f"{where}: gate.{key} must be a number from 0 to 1"
                                    + (" or null" if key == "min_f1" else "") + f", got {v!r}", key=f"gate.{key}")
    examples = d.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, Mapping) for e in examples):
        raise ContractError(f"{where}: examples must be a list of requests (mappings)", key="examples")
    name = d.get("name") or "dataset"
    return Contract(name=str(name), source=source, target=target, features=tuple(features), id=ids,
                    dropped=tuple(dropped), gate=Gate(**gate_kwargs), examples=tuple(dict(e) for e in examples),
                    description=str(d.get("description") or ""))


def _feature_from(name: str, spec: Any, where: str) -> Feature:
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
    """
    from ..home import Home

    home = Home.resolve(home)
    path = path_in(home.root)
    if not path.exists():
        return lab()
    return load_file(path)


def to_json(contract: Contract) -> str:
    """The contract as canonical JSON (the copy kept beside a registered model)."""
    return json.dumps(contract.to_dict(), indent=1, ensure_ascii=False) + "\n"


def from_json(text: str, *, where: str = "contract copy") -> Contract:
    try:
        return from_dict(json.loads(text), where=where)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{where} is not valid JSON ({exc.msg})", key="") from None


# --- the lab's contract ------------------------------------------------------------

#: The lab's example requests (features + request id): API examples and demos.
LAB_EXAMPLES: tuple[dict[str, Any], ...] = (
    {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
     "region": "AF", "request_id": "req-001"},
    {"tenure_months": 48, "num_complaints": 0, "avg_session_minutes": 60.0, "plan_type": "premium",
     "region": "EU", "request_id": "req-safe"},
    {"tenure_months": 180, "num_complaints": 30, "avg_session_minutes": 1.0, "plan_type": "basic",
     "region": "AF"},
)

_LAB: Contract | None = None


def lab() -> Contract:
    """The lab's contract: five features, ``churn`` 0/1, the generator, the lab's gate floor 0.65.

    ``NA`` is North America, never "missing": only the empty field is missing.
    """
    global _LAB
    if _LAB is None:
        _LAB = Contract(
            name="lab",
            description="The Lab 1 MLOps synthetic churn data (the embedded default).",
            source=Source(generator="lab"),
            target=Target("churn", ("1",), ("0",)),
            features=(
                Feature("tenure_months", INTEGER, low=0, high=200, description="months as a customer"),
                Feature("num_complaints", INTEGER, low=0, high=50, description="complaints filed"),
                Feature("avg_session_minutes", FLOAT, low=0.0, high=500.0, clip_low=0.0,
                        description="average session length; negative values are clipped to 0"),
                Feature("plan_type", CATEGORICAL, values=("basic", "premium"), case="lower"),
                Feature("region", CATEGORICAL, values=("NA", "EU", "AF", "AS"), case="upper",
                        description="NA is North America"),
            ),
            gate=Gate(min_f1=0.65, baseline_margin=0.0, regression_tolerance=0.02),
            examples=LAB_EXAMPLES,
        )
    return _LAB


# --- the one frame validator --------------------------------------------------------

#: Rule names (the quality stage's check names).
RULE_MISSING = "missing_rate"
RULE_TYPE = "numeric_type"
RULE_RANGE = "range"
RULE_CATEGORY = "allowed_categories"
RULE_TARGET = "target_values"
RULE_ID = "id_values"


@dataclass
class ColumnCheck:
    """What :func:`check_frame` found in one column.

    ``values`` is the parsed column: float64 (NaN where missing or invalid) for
    numbers and booleans (0/1), object (normalised text, None where missing)
    for categories and ids, int8 (1, 0; -1 missing or invalid) for the target.
    ``violations`` maps a rule to the mask of rows breaking it, ``what`` to the
    rule in words; ``changes`` counts what cleaning changed.
    """

    name: str
    role: str  # feature | target | id
    feature: Feature | None
    raw: pd.Series = field(repr=False)
    values: np.ndarray = field(repr=False)
    missing: np.ndarray = field(repr=False)
    violations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    what: dict[str, str] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)

    @property
    def invalid(self) -> np.ndarray:
        """Rows breaking any rule of this column (missing values not counted)."""
        out = np.zeros(len(self.values), dtype=bool)
        for mask in self.violations.values():
            out |= mask
        return out

    @property
    def missing_is_invalid(self) -> bool:
        """A missing value makes the row unusable (drop features, the target, ids)."""
        return self.role != "feature" or not self.feature.imputed

    def messages(self, idx: np.ndarray) -> list[list[str]]:
        """Per row in ``idx``: what is wrong with this column's value, in words."""
        out: list[list[str]] = [[] for _ in range(len(idx))]
        if not len(idx):
            return out
        raw = self.raw.to_numpy()[idx]
        miss = self.missing[idx] & self.missing_is_invalid
        for k in np.flatnonzero(miss):
            out[k].append(f"{self.name} is missing")
        for rule, mask in self.violations.items():
            hit = mask[idx]
            for k in np.flatnonzero(hit):
                out[k].append(_message(self, rule, raw[k]))
        return out


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return format(v, ".10g")
    if isinstance(v, (int, np.integer)):
        return str(v)
    return repr(str(v)) if not isinstance(v, str) else repr(v)


def _message(col: ColumnCheck, rule: str, raw: Any) -> str:
    f = col.feature
    shown = _value_text(raw)
    if rule == RULE_TYPE:
        if f is not None and f.type == BOOLEAN:
            return f"{col.name}={shown} is not a boolean ({'/'.join(f.true_values[:3])} or {'/'.join(f.false_values[:3])})"
        try:
            x = float(raw)
            if math.isfinite(x) and f is not None and f.type == INTEGER and not x.is_integer():
                return f"{col.name}={format(x, '.10g')} is not a whole number"
        except (TypeError, ValueError):
            pass
        return f"{col.name}={shown} is not a number"
    if rule == RULE_RANGE:
        try:
            shown = format(float(raw), ".10g")
        except (TypeError, ValueError):
            pass
        return f"{col.name}={shown} is outside {f.range_text()}"
    if rule == RULE_CATEGORY:
        return f"{col.name}={shown} is not one of {', '.join(f.values)}"
    if rule == RULE_TARGET:
        return f"{col.name}={shown} is not a target label ({col.what.get('labels', '')})"
    if rule == RULE_ID:
        return f"{col.name}={shown[:40]} is longer than {MAX_TEXT_LENGTH} characters"
    return f"{col.name}={shown}: {col.what.get(rule, rule)}"


@dataclass
class FrameCheck:
    """The validator's result for one frame: a :class:`ColumnCheck` per contract column present."""

    contract: Contract
    n_rows: int
    columns: dict[str, ColumnCheck]
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()

    def bad_rows(self) -> np.ndarray:
        """Rows that cannot be used: a violation anywhere, or a missing value where missing is not allowed."""
        bad = np.zeros(self.n_rows, dtype=bool)
        for col in self.columns.values():
            bad |= col.invalid
            if col.missing_is_invalid:
                bad |= col.missing
        return bad

    def reasons(self, idx: np.ndarray) -> list[str]:
        """Per row in ``idx``: every broken rule, joined by ``"; "`` (empty for a valid row)."""
        per_row: list[list[str]] = [[] for _ in range(len(idx))]
        for col in self.columns.values():
            for k, msgs in enumerate(col.messages(idx)):
                per_row[k].extend(msgs)
        return ["; ".join(m) for m in per_row]

    def counts(self) -> dict[str, int]:
        """Rows per ``"column: rule"`` (missing counted where it makes a row unusable)."""
        out: dict[str, int] = {}
        for col in self.columns.values():
            if col.missing_is_invalid and col.missing.any():
                out[f"{col.name}: missing"] = int(col.missing.sum())
            for rule, mask in col.violations.items():
                k = int(mask.sum())
                if k:
                    out[f"{col.name}: {_RULE_WORDS.get(rule, rule)}"] = k
        return out

    def features(self, keep: np.ndarray | None = None) -> dict[str, Any]:
        """Feature -> parsed column for the rows ``keep`` (all rows by default), as the scorer takes them.

        Numbers and booleans are float64 (NaN where missing); categories are a
        ``pandas.Categorical`` (missing as NaN).
        """
        out: dict[str, Any] = {}
        for f in self.contract.features:
            col = self.columns[f.name]
            values = col.values if keep is None else col.values[keep]
            if f.type == CATEGORICAL:
                out[f.name] = pd.Categorical(values)
            else:
                out[f.name] = values
        return out

    def clean_frame(self, keep: np.ndarray) -> pd.DataFrame:
        """The kept rows in the processed format: ids as text, integers as integers (nullable when
        missing), booleans 0/1, categories as text, the target 0/1; in the contract's column order."""
        data: dict[str, Any] = {}
        for name in self.contract.id:
            data[name] = pd.Series(self.columns[name].values[keep], dtype="str")
        for f in self.contract.features:
            v = self.columns[f.name].values[keep]
            if f.type == FLOAT:
                data[f.name] = pd.Series(v, dtype="float64")
            elif f.type in (INTEGER, BOOLEAN):
                s = pd.Series(v, dtype="float64")
                data[f.name] = s.astype("int64") if not s.isna().any() else s.astype("Int64")
            else:
                data[f.name] = pd.Series(v, dtype="str")
        data[self.contract.target.column] = pd.Series(self.columns[self.contract.target.column].values[keep],
                                                      dtype="int64")
        return pd.DataFrame(data)


_RULE_WORDS = {RULE_TYPE: "not a number", RULE_RANGE: "out of range", RULE_CATEGORY: "unknown category",
               RULE_TARGET: "unknown target label", RULE_ID: "bad id"}


def check_frame(frame: pd.DataFrame, contract: Contract, *, target: bool = True, ids: bool = True,
                features: Sequence[str] | None = None, clip: bool = False) -> FrameCheck:
    """Validate and parse the contract's columns of ``frame``: the one implementation of the row rules.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns as read (text, numbers or ``category``; missing as NaN or as the contract's tokens).
    contract : Contract
    target, ids : bool, default=True
        Check the target and id columns too (batch scoring checks features only).
    features : sequence of str, optional
        Only these features (default: all).
    clip : bool, default=False
        Apply the contract's cleaning clips before the range check (the prepare
        stage does; the API and batch scoring refuse a value outside the range).

    Returns
    -------
    FrameCheck

    Examples
    --------
    >>> frame = pd.DataFrame({"tenure_months": [6, 250], "num_complaints": [3, 0],
    ...     "avg_session_minutes": [12.5, 1.0], "plan_type": ["basic", "Gold"], "region": [" na", "EU"]})
    >>> check = check_frame(frame, lab(), target=False)
    >>> check.bad_rows().tolist(), check.reasons(np.array([1]))
    ([False, True], ["tenure_months=250 is outside 0..200; plan_type='Gold' is not one of basic, premium"])
    """
    n = len(frame)
    wanted = [*(contract.id if ids else ()), *(contract.feature_names if features is None else features),
              *((contract.target.column,) if target else ())]
    missing_cols = tuple(c for c in wanted if c not in frame.columns)
    extra = tuple(c for c in frame.columns if c not in contract.known_columns)
    cols: dict[str, ColumnCheck] = {}
    for name in wanted:
        if name in missing_cols:
            continue
        s = frame[name]
        if name == contract.target.column:
            cols[name] = _check_target(s, contract.target)
        elif name in contract.id:
            cols[name] = _check_id(s, name)
        else:
            f = contract.feature(name)
            cols[name] = _check_categorical(s, f) if f.type == CATEGORICAL else _check_number(s, f, clip=clip)
    return FrameCheck(contract, n, cols, missing_cols, extra)


def _factorized(s: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes and uniques of a column (-1 for missing); a ``category`` column is mapped through its categories."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), list(s.cat.categories)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, list(uniques)


def _check_number(s: pd.Series, f: Feature, *, clip: bool) -> ColumnCheck:
    n = len(s)
    tokens = {t.strip() for t in f.missing}
    violations: dict[str, np.ndarray] = {}
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        missing = np.isnan(v)
        unparsed = np.isinf(v)
    elif pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        missing = np.isnan(v)
        unparsed = np.zeros(n, dtype=bool)
    else:
        # Few distinct spellings in most columns: parse each once.
        codes, uniques = _factorized(s)
        texts = [str(u).strip() for u in uniques]
        miss_u = np.array([t in tokens for t in texts] + [True])
        if f.type == BOOLEAN:
            parsed = [f.boolean(t) for t in texts]
            val_u = np.array([np.nan if p is None else float(p) for p in parsed] + [np.nan])
        else:
            val_u = np.append(pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
                              .to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
        v = val_u[codes].copy()
        missing = miss_u[codes]
        unparsed = ~missing & ~np.isfinite(v)
    v[unparsed | missing] = np.nan
    if f.type == BOOLEAN:
        unparsed |= ~missing & np.isfinite(v) & ~np.isin(v, (0.0, 1.0))
    elif f.type == INTEGER:
        with np.errstate(invalid="ignore"):
            unparsed |= np.isfinite(v) & (v != np.round(v))
    v[unparsed] = np.nan
    violations[RULE_TYPE] = unparsed
    changes = {}
    if clip and f.clip_low is not None:
        below = v < f.clip_low
        changes[f"{f.name} clipped to {_num(f.clip_low)}"] = int(below.sum())
        v[below] = f.clip_low
    if clip and f.clip_high is not None:
        above = v > f.clip_high
        changes[f"{f.name} clipped to {_num(f.clip_high)}"] = int(above.sum())
        v[above] = f.clip_high
    if f.type != BOOLEAN:
        with np.errstate(invalid="ignore"):
            out = np.zeros(n, dtype=bool)
            if f.low is not None:
                out |= v < f.low
            if f.high is not None:
                out |= v > f.high
        violations[RULE_RANGE] = out
        v[out] = np.nan
    what = {RULE_TYPE: "values that are not " + ("booleans" if f.type == BOOLEAN else "whole numbers"
                                                 if f.type == INTEGER else "numbers"),
            RULE_RANGE: f"values outside [{f.range_text()}]" if f.low is not None and f.high is not None
            else f"values outside {f.range_text()}"}
    return ColumnCheck(f.name, "feature", f, s, v, missing, violations, what, changes)


def _check_categorical(s: pd.Series, f: Feature) -> ColumnCheck:
    tokens = {t.strip() for t in f.missing}
    codes, uniques = _factorized(s)
    raw_u = [str(u) for u in uniques]
    norm_u = [f.normalise(u) for u in raw_u]
    miss_u = np.array([r.strip() in tokens for r in raw_u] + [True])
    missing = miss_u[codes]
    changed_u = np.array([a != b for a, b in zip(raw_u, norm_u)] + [False])
    allowed = set(f.values)
    unknown_u = np.array([(not m) and (f.unseen == "reject") and (v not in allowed) and len(v) <= MAX_TEXT_LENGTH
                          for v, m in zip(norm_u, miss_u[:-1])] + [False])
    too_long_u = np.array([(not m) and len(v) > MAX_TEXT_LENGTH for v, m in zip(norm_u, miss_u[:-1])] + [False])
    values_u = np.array(norm_u + [None], dtype=object)
    values_u[np.flatnonzero(miss_u)] = None
    values = values_u[codes]
    unknown = unknown_u[codes] | too_long_u[codes]
    values[unknown] = None
    seen = sorted({norm_u[i] for i in np.unique(codes[unknown_u[codes]])})
    what = {RULE_CATEGORY: f"values outside {list(f.values)}" + (f" (seen: {seen[:5]})" if seen else "")}
    changes = {f"{f.name} normalised": int(changed_u[codes].sum()) if raw_u else 0}
    return ColumnCheck(f.name, "feature", f, s, values, missing, {RULE_CATEGORY: unknown}, what, changes)


def _label_matcher(labels: tuple[str, ...]):
    texts = {l.strip().casefold() for l in labels}
    numbers = set()
    for l in labels:
        try:
            numbers.add(float(l))
        except ValueError:
            pass

    def match(text: str) -> bool:
        if text.casefold() in texts:
            return True
        if numbers:
            try:
                return float(text) in numbers
            except ValueError:
                return False
        return False

    return match


def _check_target(s: pd.Series, target: Target) -> ColumnCheck:
    codes, uniques = _factorized(s)
    texts = [_text(u).strip() if not isinstance(u, str) else u.strip() for u in uniques]
    pos, neg = _label_matcher(target.positive), _label_matcher(target.negative)
    label_u = np.array([1 if pos(t) else 0 if neg(t) else -2 for t in texts] + [-1], dtype=np.int8)
    miss_u = np.array([t == "" for t in texts] + [True])
    label_u[miss_u] = -1
    labels = label_u[codes]
    missing = labels == -1
    bad = labels == -2
    labels = np.where(bad, -1, labels).astype(np.int8)
    seen = sorted({texts[i] for i in np.unique(codes[bad])})
    what = {RULE_TARGET: f"values outside {list(target.positive) + list(target.negative)}"
                         + (f" (seen: {seen[:5]})" if seen else ""),
            "labels": target.label_text()}
    return ColumnCheck(target.column, "target", None, s, labels, missing, {RULE_TARGET: bad}, what)


def _check_id(s: pd.Series, name: str) -> ColumnCheck:
    codes, uniques = _factorized(s)
    texts = [_text(u).strip() if not isinstance(u, str) else u.strip() for u in uniques]
    miss_u = np.array([t == "" for t in texts] + [True])
    long_u = np.array([len(t) > MAX_TEXT_LENGTH for t in texts] + [False])
    values = np.array(texts + [None], dtype=object)[codes]
    missing = miss_u[codes]
    bad = long_u[codes]
    values[missing | bad] = None
    return ColumnCheck(name, "id", None, s, values, missing, {RULE_ID: bad},
                       {RULE_ID: f"ids longer than {MAX_TEXT_LENGTH} characters"})
