"""The contract's definitions: what a data set is (features, target, source, dropped columns,
the gate's settings) and the check that a contract is consistent.

A :class:`Contract` says where the data comes from (a CSV file or glob in its
:class:`CsvDialect`, a Parquet file or glob, or the lab's generator), which column(s) name a customer, which column is the target
and which of its labels mean "churned", and, per :class:`Feature`, its type
(integer, float, boolean, categorical), the tokens that mean "missing" and what
to do with a missing value, its valid range or its allowed values, how text is
normalised and what an unseen category gets. Building one checks it
(:func:`_check_contract`): a contract that exists is consistent. Reading and
writing it is :mod:`.files`; validating rows against it is :mod:`.frame`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Callable

from .._params import UNIT, Range, check_fields, param
from ..exceptions import ContractError

#: Version of the contract's file format (``format:`` in ``dataset.yaml``).
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
        low, high = (None if v is None else number_text(v) for v in (self.low, self.high))
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


#: Column separators a CSV file may use (``csv: {sep: ...}``), with their names in messages.
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}
#: Decimal marks of numbers in a CSV file (``csv: {decimal: ...}``).
DECIMALS = (".", ",")
#: File name endings of a Parquet source (a file of another name is read as CSV).
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV source is written: its column separator and decimal mark (UTF-8, ``"`` quotes, always).

    The lab's dialect (comma, dot) is the default; ``data/raw.csv`` is always
    written in it, whatever the source's.

    Examples
    --------
    >>> CsvDialect(sep=";", decimal=",").describe()
    'separated by semicolons, decimal comma'
    """

    sep: str = ","
    decimal: str = "."

    def __post_init__(self) -> None:
        if self.sep not in SEPARATORS:
            raise ContractError(f"source.csv.sep {self.sep!r} is not one of "
                                f"{', '.join(repr(s) for s in SEPARATORS)}", key="source.csv.sep")
        if self.decimal not in DECIMALS:
            raise ContractError(f"source.csv.decimal {self.decimal!r} is not one of "
                                f"{', '.join(repr(d) for d in DECIMALS)}", key="source.csv.decimal")
        if self.sep == self.decimal:
            raise ContractError("source.csv: sep and decimal cannot both be ','", key="source.csv")

    @property
    def is_default(self) -> bool:
        """The lab's dialect (comma-separated, decimal dot)."""
        return self == CsvDialect()

    def to_dict(self) -> dict[str, str]:
        return {"sep": self.sep, "decimal": self.decimal}

    def describe(self) -> str:
        return f"separated by {SEPARATORS[self.sep]}, decimal {'dot' if self.decimal == '.' else 'comma'}"


def is_parquet_name(path: str) -> bool:
    """True for a file name or glob ending like a Parquet file (``.parquet``, ``.parq``, ``.pq``)."""
    return path.lower().endswith(PARQUET_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """Where stage 01 takes the data from: the lab's generator, a CSV file / glob (in its ``csv`` dialect)
    or a Parquet file / glob."""

    generator: str | None = "lab"
    path: str | None = None
    csv: CsvDialect = CsvDialect()

    def __post_init__(self) -> None:
        if not self.csv.is_default and (self.is_generator or self.is_parquet):
            what = "the lab generator" if self.is_generator else f"a Parquet source ({self.path})"
            raise ContractError(f"source.csv applies to CSV files, not to {what}: remove it", key="source.csv")

    @property
    def is_generator(self) -> bool:
        return self.generator is not None

    @property
    def is_parquet(self) -> bool:
        """A file source whose name says Parquet (``.parquet``, ``.parq``, ``.pq``)."""
        return self.path is not None and is_parquet_name(self.path)

    def describe(self) -> str:
        return f"the {self.generator} generator" if self.is_generator else f"the file(s) {self.path}"


@dataclass(frozen=True)
class Dropped:
    """A column of the source that no stage uses, and why."""

    column: str
    reason: str


@dataclass(frozen=True)
class Gate:
    """The quality gate's settings for a data set (``gate:`` in ``dataset.yaml``), declared once here.

    A train parameter of the same name overrides a setting for one run
    (:func:`churn_lib.learn.gate.settings`); the gate itself is
    :func:`churn_lib.learn.gate.check`. ``min_f1`` None: no absolute floor;
    ``min_lift_top_decile`` None: not checked; ``auc_tolerance`` None: the
    same tolerance as ``regression_tolerance``.

    Raises
    ------
    InvalidParameter
        A value its declaration refuses.
    """

    min_f1: float | None = param(None, "least test F1 at the stored threshold of an F1-tuned model, an absolute "
                                       "floor (the lab's 0.65; a new contract sets none)", range=UNIT)
    baseline_margin: float = param(0.02, "F1 margin required over each trivial baseline (of an F1-tuned model)",
                                   range=UNIT)
    regression_tolerance: float = param(0.02, "allowed drop of the objective against the current model on the same "
                                              "test rows: F1 points (F1-tuned), a share of the current model's "
                                              "profit (profit-tuned)", range=UNIT)
    min_lift_top_decile: float | None = param(None, "least lift of the riskiest tenth of the test split (its churn "
                                                    "rate over the overall rate), checked when set",
                                              range=Range(0))
    auc_tolerance: float | None = param(None, "allowed ROC AUC drop against the current model on the same test "
                                              "rows, whatever the objective (unset in the contract: "
                                              "regression_tolerance)", range=UNIT)

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``dataset.yaml`` holds them; ``min_lift_top_decile`` and ``auc_tolerance`` only when
        set, so a contract that does not set them keeps its fingerprint (:meth:`Contract.sha256`) from before
        the settings existed."""
        out = asdict(self)
        for name in ("min_lift_top_decile", "auc_tolerance"):
            if out[name] is None:
                del out[name]
        return out


@dataclass(frozen=True)
class Contract:
    """What a data set is: source, id, target, features, dropped columns, the gate's settings."""

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
        return self == lab()

    # --- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain data (what ``dataset.yaml`` and the model's copy hold)."""
        src = {"generator": self.source.generator} if self.source.is_generator else {"path": self.source.path}
        if not self.source.csv.is_default:  # the lab's dialect is not written: contracts before it keep their sha256
            src["csv"] = self.source.csv.to_dict()
        out: dict[str, Any] = {"format": FORMAT, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["source"] = src
        out["id"] = list(self.id)
        out["target"] = {"column": self.target.column, "positive": list(self.target.positive),
                         "negative": list(self.target.negative)}
        out["features"] = {f.name: _feature_dict(f) for f in self.features}
        out["dropped"] = [{"column": d.column, "reason": d.reason} for d in self.dropped]
        out["gate"] = self.gate.to_dict()
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


def number_text(v: float) -> str:
    """A number as the contract writes it in words: ``3`` for a whole one, else ``%g`` (``12.5``, ``1e+06``)."""
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
    """Refuse an inconsistent contract, naming the key: columns, target labels, then each feature."""
    where = f"contract {c.name!r}"
    if not c.features:
        raise ContractError(f"{where} has no features: list at least one under features:", key="features")
    _check_columns(c, where)
    if not c.target.positive or not c.target.negative:
        raise ContractError(f"{where}: target.positive and target.negative each need at least one label",
                            key="target")
    overlap = {p.strip().casefold() for p in c.target.positive} & {n.strip().casefold() for n in c.target.negative}
    if overlap:
        raise ContractError(f"{where}: target label(s) {sorted(overlap)} are both positive and negative",
                            key="target")
    for f in c.features:
        _check_feature(f, f"{where}: feature {f.name!r}")


def _check_columns(c: Contract, where: str) -> None:
    """Every column named once, printable, and not a name the API reserves."""
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


def _check_feature(f: Feature, fw: str) -> None:
    if f.type not in TYPES:
        raise ContractError(f"{fw}: type {f.type!r} is not one of {', '.join(TYPES)}", key=f.name)
    if f.on_missing not in ON_MISSING:
        raise ContractError(f"{fw}: on_missing {f.on_missing!r} is not one of {', '.join(ON_MISSING)}", key=f.name)
    for bound in (f.low, f.high, f.clip_low, f.clip_high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or not math.isfinite(bound)):
            raise ContractError(f"{fw}: range and clip bounds must be finite numbers or null, got {bound!r}",
                                key=f.name)
    if f.low is not None and f.high is not None and f.low > f.high:
        raise ContractError(f"{fw}: range [{f.low}, {f.high}] is empty (low > high)", key=f.name)
    if f.type == CATEGORICAL:
        _check_categories(f, fw)
    if f.type == BOOLEAN:
        t = {v.strip().casefold() for v in f.true_values}
        fl = {v.strip().casefold() for v in f.false_values}
        if not t or not fl or t & fl:
            raise ContractError(f"{fw}: true and false need distinct spellings", key=f.name)


def _check_categories(f: Feature, fw: str) -> None:
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


# --- helpers the readers share ------------------------------------------------------

def _text(v: Any) -> str:
    """A value as text, a whole float without its ``.0`` (YAML and CSV readers give ``1.0`` for ``1``)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _label_matcher(labels: tuple[str, ...]) -> Callable[[str], bool]:
    """A test of whether a (stripped) text is one of ``labels``: case-folded, or the same number (``1.0`` is ``1``)."""
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

