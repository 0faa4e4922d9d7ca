"""The home's loop policy: ``churn.yaml`` at the home's root, its sections declared once, read and checked.

Each section is a dataclass whose fields are declared with
:func:`churn_lib._params.param` (default, help, range): the defaults are the
policy of a home without the file, and every value of the file is checked by
the same declaration, so a refused value reads like a refused flag::

    compare:
      min_labelled_pairs: 200   # labelled pairs below which compare says insufficient_evidence
      min_positives: 20
      alpha: 0.05

Sections: ``compare`` (:class:`ComparePolicy`, read by :mod:`churn_lib.loop.compare`)
and ``watch`` (:class:`WatchPolicy`, read by :mod:`churn_lib.loop.watch`). An
unknown section, an unknown key or a bad value is an
:class:`~churn_lib.exceptions.InvalidParameter` whose one-line message names
the file and the key (``churn.yaml: compare.alpha must be ...``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .._params import UNIT, Range, check_fields, declared, param
from ..exceptions import InvalidParameter
from ..drift import parse_since
from ..home import Home

COMPARE, WATCH = "compare", "watch"
#: The sections ``churn.yaml`` may have.
SECTIONS = (COMPARE, WATCH)

_AT_LEAST_0 = Range(0)


@dataclass(frozen=True)
class ComparePolicy:
    """What ``churn compare`` needs before a verdict, and how it tests (the ``compare:`` section)."""

    min_labelled_pairs: int = param(200, "pairs with an outcome below which the verdict is insufficient_evidence",
                                    range=Range(1))
    min_positives: int = param(20, "churners among the labelled pairs below which the verdict is "
                                   "insufficient_evidence", range=Range(1))
    alpha: float = param(0.05, "the tests' level: (1 - alpha) intervals, p-values below alpha are significant",
                         range=Range(0, 0.5, open_low=True, open_high=True))
    draws: int = param(1000, "bootstrap draws of the paired intervals", range=Range(100, 100_000))
    seed: int = param(0, "seed of the bootstrap draws", range=Range(0))
    retention_value: float | None = param(None, "profit: value of keeping a churner, when neither model was "
                                                "trained with costs", range=_AT_LEAST_0)
    offer_cost: float | None = param(None, "profit: cost of one offer, when neither model was trained with costs",
                                     range=_AT_LEAST_0)
    offer_success: float = param(1.0, "profit: share of contacted churners who stay",
                                 range=Range(0, 1, open_low=True))

    def __post_init__(self) -> None:
        check_fields(self)
        given = [n for n in ("retention_value", "offer_cost") if getattr(self, n) is not None]
        if len(given) == 1:
            missing = "offer_cost" if given == ["retention_value"] else "retention_value"
            raise InvalidParameter(f"{missing} must be given with {given[0]} (profit needs both)", name=missing)

    def costs(self) -> dict[str, float] | None:
        """The costs of profit (as a registry entry keeps them), or None when not set."""
        if self.retention_value is None:
            return None
        return {"retention_value": self.retention_value, "offer_cost": self.offer_cost,
                "offer_success": self.offer_success}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_AGE = re.compile(r"^\s*\d+(?:\.\d+)?\s*[smhdw]\s*$")


def age_seconds(text: Any, *, name: str = "age") -> float:
    """Seconds of an age such as ``30m``, ``24h`` or ``7d`` (s, m, h, d, w); refused otherwise, naming ``name``.

    Examples
    --------
    >>> age_seconds("24h"), age_seconds("90s")
    (86400.0, 90.0)
    """
    if not isinstance(text, str) or not _AGE.match(text) or -parse_since(text, now=0.0) <= 0:
        raise InvalidParameter(f"{name} must be an age such as 30m, 24h or 7d (s, m, h, d, w; more than 0), "
                               f"got {text!r}", name=name)
    return -parse_since(text, now=0.0)


def __getattr__(name: str) -> Any:
    """``RETRAIN_STAGES``, the stages of a watch's retrain (the newest data, the source read again, prepared,
    trained, evaluated: a default run), looked up when asked for: the stage table imports the stages' libraries
    (pandas among them), which reading the policy (``churn compare``) does not need."""
    if name == "RETRAIN_STAGES":
        from ..run import stages as _stages

        return _stages.DEFAULT_RUN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The metrics a watch's floor may be set on (the figures ``churn performance`` gives, higher is better).
WATCH_METRICS = ("f1", "roc_auc", "precision", "recall")


@dataclass(frozen=True)
class WatchPolicy:
    """When ``churn watch`` retrains, and what it does with the new version (the ``watch:`` section)."""

    metric: str = param("f1", "the performance figure held against the floor", choices=WATCH_METRICS)
    floor: float | None = param(None, "the value below which a tick is below the floor; None: the current "
                                      "version's gate F1 (as churn performance uses; metric f1 only)", range=UNIT)
    below_floor_ticks: int = param(2, "N: ticks below the floor, among the last of_last_ticks, that retrain",
                                   range=Range(1))
    of_last_ticks: int = param(3, "T: the ticks (with a performance figure) N is counted in, this one included",
                               range=Range(1, 1000))
    cooldown: str = param("24h", "no retrain sooner than this after a retrain started or the current model "
                                 "changed (an age: 30m, 24h, 7d)")
    window: str | None = param(None, "the predictions a tick reads: None, those since the last tick (the first "
                                     "tick reads the whole log); an age (7d): those of that age")
    min_rows: int = param(100, "predictions of the current model (with outcomes for realized figures, without "
                               "for estimated ones) below which a figure is not trusted", range=Range(1))
    min_positives: int = param(10, "churners among the outcomes below which realized figures are not trusted "
                                   "(the estimate is used)", range=Range(0))
    sample: float = param(1.0, "the share of requests a retrained challenger scores in shadow",
                          range=Range(0, 1, open_low=True))
    auto_promote: bool = param(False, "promote the challenger when churn compare says challenger_better and the "
                                      "gate passes; false: a person runs churn promote")
    retrain_params: dict | None = param(None, "notebook parameters of the retrain run (as churn run -p NAME=VALUE); "
                                              "None: the stages' defaults")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.below_floor_ticks > self.of_last_ticks:
            raise InvalidParameter(f"below_floor_ticks must be at most of_last_ticks ({self.of_last_ticks}), "
                                   f"got {self.below_floor_ticks}", name="below_floor_ticks")
        if self.floor is None and self.metric != "f1":
            raise InvalidParameter(f"floor must be given with metric {self.metric} (the gate's floor is an F1)",
                                   name="floor")
        age_seconds(self.cooldown, name="cooldown")
        if self.window is not None:
            age_seconds(self.window, name="window")
        if self.retrain_params:
            if "version" in self.retrain_params:  # each retrain takes the next free label
                raise InvalidParameter("retrain_params cannot set version: each retrain registers the next vN",
                                       name="retrain_params")
            from ..run import stages as _stages  # only a policy with retrain parameters needs the stage table

            try:
                _stages.check(_stages.DEFAULT_RUN, self.retrain_params)
            except InvalidParameter as exc:
                why = exc.message.splitlines()[0]
                raise InvalidParameter(f"retrain_params is refused by the retrain's stages: {why}",
                                       name="retrain_params") from None

    @property
    def cooldown_seconds(self) -> float:
        return age_seconds(self.cooldown, name="cooldown")

    @property
    def window_seconds(self) -> float | None:
        return None if self.window is None else age_seconds(self.window, name="window")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sha256(self) -> str:
        """The sha256 of the policy's canonical JSON (sorted keys, no spaces): the same values, the same hash."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Policy:
    """A home's policy: each section's values, the file it came from (None: defaults) and its sha256."""

    compare: ComparePolicy = field(default_factory=ComparePolicy)
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    path: str | None = None
    sha256: str | None = None


def _section(cls: type, values: Any, where: str, name: str) -> Any:
    """``cls`` built from the mapping ``values``; an unknown key or a refused value names ``name.key``."""
    if values is None:
        return cls()
    if not isinstance(values, Mapping):
        raise InvalidParameter(f"{where}: {name} must be a mapping of keys to values, got {values!r}", name=name)
    known = [p.name for p in declared(cls)]
    for key in values:
        if key not in known:
            raise InvalidParameter(f"{where}: {name}.{key} is not a key of {name} (known: {', '.join(known)})",
                                   name=f"{name}.{key}")
    for p in declared(cls):  # each value by its declaration first, so the message names the key given
        if p.name in values:
            why = p.refusal(values[p.name])
            if why is not None:
                raise InvalidParameter(f"{where}: {name}.{p.name} {why}", name=f"{name}.{p.name}")
    try:
        return cls(**{p.name: p.coerce(values[p.name]) for p in declared(cls) if p.name in values})
    except InvalidParameter as exc:  # a rule over several keys
        raise InvalidParameter(f"{where}: {name}.{exc.name} {exc.message.removeprefix(str(exc.name) + ' ')}",
                               name=f"{name}.{exc.name}") from None


def load(*, home: Home | str | None = None) -> Policy:
    """The policy of a home: its ``churn.yaml``, or the documented defaults when it has none.

    Parameters
    ----------
    home : Home or path, optional

    Returns
    -------
    Policy

    Raises
    ------
    InvalidParameter
        The file is not readable YAML, or has an unknown section or key, or a value its declaration refuses
        (one line naming the file and the key; ``.name`` is ``section.key``).

    Examples
    --------
    >>> import tempfile
    >>> load(home=tempfile.mkdtemp()).compare.min_labelled_pairs
    200
    """
    import yaml

    home = Home.resolve(home)
    path = home.config_yaml
    where = path.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Policy()
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror or exc}", name=where, path=str(path)) from None
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidParameter(f"{where} is not valid YAML: {str(exc).splitlines()[0]}", name=where,
                               path=str(path)) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise InvalidParameter(f"{where} must be a mapping of sections ({', '.join(SECTIONS)}), got {raw!r}",
                               name=where, path=str(path))
    for key in raw:
        if key not in SECTIONS:
            raise InvalidParameter(f"{where}: {key} is not a section (known: {', '.join(SECTIONS)})",
                                   name=str(key), path=str(path))
    try:
        compare = _section(ComparePolicy, raw.get(COMPARE), where, COMPARE)
        watch = _section(WatchPolicy, raw.get(WATCH), where, WATCH)
    except InvalidParameter as exc:
        exc.path = str(path)
        raise
    return Policy(compare, watch, str(path), hashlib.sha256(data).hexdigest())
