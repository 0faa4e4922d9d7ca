"""Inferring a dataset contract from a CSV file (``churn init --data FILE --target COLUMN``).

The file is read once, in chunks of rows, every cell as text; per column only
bounded sufficient statistics are kept (counts, min, max, sum, up to
:data:`MAX_TRACKED` distinct values, a k-minimum-values sketch of the
distinct count), so memory does not grow with the file. Then each column gets
a role and a type:

* the target: exactly two labels; the positive one given (``--positive``) or
  recognised (``yes``, ``true``, ``1``, ``churned`` ...);
* numbers: every non-missing value parses (a handful of other tokens such as
  ``NA`` or ``?`` in an otherwise numeric column are that column's missing
  tokens; blanks always are): ``integer`` when all are whole, ``float``
  otherwise, ``boolean`` when the only values are 0 and 1; the valid range is
  the observed one widened by its width on each side (and never below 0 when
  nothing was negative);
* text: two yes/no-like values make a ``boolean``; up to
  :data:`MAX_CATEGORIES` values a ``categorical`` (values listed; unseen ones
  rejected up to 20 values, scored as "no category" above); one value is a
  constant (dropped); a column whose values are all different is an id
  candidate (the id, when ``--id`` is not given) or near-unique free text
  (dropped), and other many-valued text is dropped with the reason; a column
  empty in more than half of the rows is dropped as mostly empty.

A feature with missing values is filled in by the model (``on_missing:
impute``); one without is required (``drop``). :func:`render_yaml` writes the
contract with comments a person can review; reading it back gives the same
contract (tested).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import contract as _contract
from .data.ingest import read_header
from .exceptions import DataError, InvalidParameter

#: Distinct values tracked per column; beyond, only the sketch counts them.
MAX_TRACKED = 200
#: Most values a text column may have to be a categorical feature.
MAX_CATEGORIES = 50
#: Categoricals with up to this many values reject unseen ones; larger ones score them as "no category".
REJECT_UP_TO = 20
#: Columns missing in a larger share of rows are dropped (the prepare stage's max_imputed_rate).
MOSTLY_EMPTY = 0.5
#: Rows read per chunk.
CHUNK_ROWS = 100_000
#: Size of the distinct-count sketch (relative error about 1 / sqrt(K)).
SKETCH_K = 2048
#: Tokens that may mean "missing" in an otherwise numeric column (compared case-folded).
MISSING_WORDS = ("na", "n/a", "nan", "null", "none", "?", "-", "--", "missing", "#n/a")
_POSITIVE_WORDS = ("1", "yes", "y", "true", "t", "churn", "churned", "left", "lost", "lapsed", "cancelled",
                   "canceled", "inactive", "exited", "attrited")
_BOOL_PAIRS = ({"yes", "no"}, {"y", "n"}, {"true", "false"}, {"t", "f"})
_ID_NAME = re.compile(r"(^|[_\s-])id$|^id([_\s-]|$)|[a-z]Id$|ID$", re.IGNORECASE)


@dataclass
class ColumnStats:
    """Bounded statistics of one column of text cells."""

    name: str
    rows: int = 0
    blank: int = 0
    numeric: int = 0
    whole: int = 0
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    values: Counter = field(default_factory=Counter)   # up to MAX_TRACKED distinct (stripped) values
    overflow: bool = False
    others: Counter = field(default_factory=Counter)   # non-numeric, non-blank values (bounded)
    others_overflow: bool = False
    max_length: int = 0
    sketch: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))

    def add(self, column: pd.Series) -> None:
        self.rows += len(column)
        stripped = column.str.strip()
        blank = (stripped == "").to_numpy()
        self.blank += int(blank.sum())
        counts = stripped[~blank].value_counts(sort=False)
        if len(counts):
            self.max_length = max(self.max_length, int(counts.index.str.len().max()))
        if not self.overflow:
            for value, k in counts.items():
                self.values[value] += int(k)
            if len(self.values) > MAX_TRACKED:
                self.overflow = True
                self.values = Counter(dict(self.values.most_common(MAX_TRACKED)))
        else:
            for value, k in counts.items():
                if value in self.values:
                    self.values[value] += int(k)
        numbers = pd.to_numeric(stripped.where(~blank), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(numbers)
        self.numeric += int(finite.sum())
        if finite.any():
            x = numbers[finite]
            self.whole += int((x == np.round(x)).sum())
            self.low = min(self.low, float(x.min()))
            self.high = max(self.high, float(x.max()))
            self.total += float(x.sum())
        if not self.others_overflow:
            other = stripped[~blank & ~finite]
            if len(other):
                self.others.update(other.value_counts(sort=False).to_dict())
                if len(self.others) > 50:
                    self.others_overflow = True
        hashes = pd.util.hash_array(stripped[~blank].to_numpy(dtype=object))
        merged = np.unique(np.concatenate([self.sketch, hashes]))
        self.sketch = merged[:SKETCH_K]

    @property
    def present(self) -> int:
        return self.rows - self.blank

    @property
    def distinct(self) -> int:
        """Distinct non-blank values: exact when few, else estimated from the sketch."""
        if not self.overflow:
            return len(self.values)
        if len(self.sketch) < SKETCH_K:
            return len(self.sketch)
        kth = float(self.sketch[-1]) / float(2 ** 64)
        estimate = int(round((SKETCH_K - 1) / kth)) if kth > 0 else self.present
        return min(estimate, self.present)

    def missing_tokens(self) -> tuple[str, ...]:
        """Non-numeric tokens of a mostly numeric column that mean "missing" (None: the column is text)."""
        if self.others_overflow or not self.present:
            return ()
        words = [v for v in self.others if v.casefold() in MISSING_WORDS]
        return tuple(sorted(words)) if len(words) == len(self.others) else ()

    @property
    def is_numeric(self) -> bool:
        return self.numeric > 0 and not self.others_overflow and \
            sum(self.others.values()) == sum(self.others[t] for t in self.missing_tokens())


@dataclass
class Decision:
    """What init decided for one column, and why (one row of the table it prints)."""

    column: str
    role: str            # id | feature | target | dropped
    type: str = ""
    missing: int = 0
    distinct: int = 0
    note: str = ""


@dataclass
class Inferred:
    """The inferred contract, the decisions behind it, and what was read."""

    contract: _contract.Contract
    decisions: list[Decision]
    rows: int
    source: str
    comments: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([vars(d) for d in self.decisions],
                            columns=["column", "role", "type", "missing", "distinct", "note"])


def profile_file(path: Path, *, chunk_rows: int = CHUNK_ROWS) -> tuple[tuple[str, ...], dict[str, ColumnStats], int]:
    """Read ``path`` in chunks (every cell as text); return its columns, their statistics and the row count.

    Raises
    ------
    DataError
        Not UTF-8, not comma-separated, unreadable, or no rows.
    """
    header = read_header(path)
    stats = {c: ColumnStats(c) for c in header.columns}
    rows = 0
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk_rows,
                             skipinitialspace=False, on_bad_lines="error")
        for chunk in reader:
            rows += len(chunk)
            for c in header.columns:
                stats[c].add(chunk[c].fillna(""))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} near row "
                        f"{rows + 1}); save it as UTF-8", path=str(path)) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"cannot parse {path} as CSV near row {rows + 1}: {str(exc).splitlines()[0]}",
                        path=str(path)) from None
    if rows == 0:
        raise DataError(f"{path} has a header but no rows", path=str(path))
    return header.columns, stats, rows


def _nice(x: float, up: bool) -> float:
    """Round a bound outward to 2 significant digits."""
    if x == 0 or not math.isfinite(x):
        return 0.0
    mag = 10 ** (math.floor(math.log10(abs(x))) - 1)
    return float((math.ceil if up else math.floor)(x / mag) * mag)


def _range(s: ColumnStats, integer: bool) -> tuple[float, float]:
    width = max(s.high - s.low, abs(s.high), 1.0)
    low = 0.0 if s.low >= 0 else _nice(s.low - width, up=False)
    high = _nice(s.high + width, up=True)
    if integer:
        low, high = float(math.floor(low)), float(math.ceil(high))
    return low, high


def _target(s: ColumnStats, positive: Sequence[str] | None) -> _contract.Target:
    labels = sorted(s.values, key=lambda v: -s.values[v])
    if s.overflow or len(labels) > 2:
        shown = ", ".join(labels[:5]) + (" ..." if s.overflow or len(labels) > 5 else "")
        raise InvalidParameter(f"target {s.name} has {s.distinct if s.overflow else len(labels)} labels ({shown}): "
                               "a churn target must be binary (two labels)", name="target")
    if len(labels) < 2:
        raise InvalidParameter(f"target {s.name} has only {len(labels)} label ({', '.join(labels) or 'none'}): "
                               "both churned and stayed customers are needed", name="target")
    if positive:
        absent = [p for p in positive if p.strip() not in labels]
        if absent:
            raise InvalidParameter(f"positive label {absent[0]!r} does not occur in {s.name} (labels: "
                                   f"{', '.join(labels)})", name="positive")
        pos = [p.strip() for p in positive]
    else:
        pos = [v for v in labels if v.casefold() in _POSITIVE_WORDS]
        if len(pos) != 1:
            raise InvalidParameter(f"cannot tell which label of {s.name} means churned ({', '.join(labels)}): "
                                   "pass --positive LABEL", name="positive")
    neg = [v for v in labels if v not in pos]
    if not neg:
        raise InvalidParameter(f"every label of {s.name} is positive; one label must mean stayed", name="positive")
    return _contract.Target(s.name, tuple(pos), tuple(neg))


def infer(path: str | Path, *, target: str, positive: Sequence[str] | None = None, ids: Sequence[str] = (),
          name: str | None = None, source: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Inferred:
    """Infer a contract from a CSV file.

    Parameters
    ----------
    path : path
        The CSV (comma-separated, UTF-8).
    target : str
        The churn column.
    positive : sequence of str, optional
        The label(s) meaning churned (default: recognised, e.g. ``Yes`` or ``1``).
    ids : sequence of str, default=()
        Id column(s); default the first column whose values are all different.
    name : str, optional
        The contract's name (default the file's stem).
    source : str, optional
        ``source.path`` to write (default ``path`` as given).

    Raises
    ------
    InvalidParameter
        A target that is not binary, a positive label that does not occur, an unknown column.
    DataError
        The file cannot be read as CSV.
    """
    path = Path(path)
    columns, stats, rows = profile_file(path, chunk_rows=chunk_rows)
    for col, what in ([(target, "target")] + [(i, "id") for i in ids]):
        if col not in columns:
            raise InvalidParameter(f"{what} column {col!r} is not in {path} (columns: {', '.join(columns)})",
                                   name=what)
    tgt = _target(stats[target], positive)
    decisions: list[Decision] = []
    comments: dict[str, str] = {}
    chosen_ids = list(ids)
    features: list[_contract.Feature] = []
    dropped: list[_contract.Dropped] = []
    for col in columns:
        s = stats[col]
        if col == target:
            decisions.append(Decision(col, "target", "", s.blank, len(s.values),
                                      f"churned: {', '.join(tgt.positive)}; stayed: {', '.join(tgt.negative)}"))
            continue
        if col in chosen_ids:
            decisions.append(Decision(col, "id", "", s.blank, s.distinct, "given with --id"))
            continue
        feature, reason = _decide(s, rows, auto_id=not ids and not chosen_ids)
        if reason == "id":
            chosen_ids.append(col)
            decisions.append(Decision(col, "id", "", s.blank, s.distinct,
                                      "every value different: taken as the customer id (--id to choose another)"))
            continue
        if feature is None:
            dropped.append(_contract.Dropped(col, reason))
            decisions.append(Decision(col, "dropped", "", s.blank, s.distinct, reason))
            continue
        features.append(feature)
        comments[col] = _observed(s, feature)
        decisions.append(Decision(col, "feature", feature.type, s.blank, s.distinct, comments[col]))
    if not features:
        raise InvalidParameter(f"{path} has no column init can use as a feature (every column is the target, an "
                               "id or dropped; see the table)", name="data")
    examples = (_example(features, stats),)
    contract = _contract.Contract(
        name=name or re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem) or "dataset",
        source=_contract.Source(generator=None, path=source or str(path)), target=tgt, features=tuple(features),
        id=tuple(chosen_ids), dropped=tuple(dropped), gate=_contract.Gate(), examples=examples,
        description=f"Inferred by churn init from {path.name} ({rows:,} rows); reviewed by: (nobody yet)")
    return Inferred(contract, decisions, rows, str(path), comments)


def _decide(s: ColumnStats, rows: int, *, auto_id: bool) -> tuple[_contract.Feature | None, str]:
    present = s.present
    if present == 0:
        return None, "empty: no value in any row"
    if s.blank > MOSTLY_EMPTY * s.rows:
        return None, f"mostly empty ({s.blank / s.rows:.0%} of the rows have no value)"
    impute = "impute" if s.blank or (s.is_numeric and s.missing_tokens()) else "drop"
    if s.is_numeric:
        tokens = tuple(sorted({"", *s.missing_tokens()}))
        numeric_values = set(s.values) - set(s.missing_tokens())
        if not s.overflow and numeric_values and all(_is_01(v) for v in numeric_values) and len(numeric_values) == 2:
            return _contract.Feature(s.name, _contract.BOOLEAN, missing=tokens, on_missing=impute,
                                     true_values=tuple(sorted(v for v in numeric_values if float(v) == 1)),
                                     false_values=tuple(sorted(v for v in numeric_values if float(v) == 0))), ""
        if not s.overflow and len(numeric_values) == 1:
            return None, f"constant: every value is {next(iter(numeric_values))}"
        integer = s.whole == s.numeric
        if integer and s.distinct >= 0.98 * present and present > 50 and _ID_NAME.search(s.name):
            if auto_id:
                return None, "id"
            return None, "an id-like number (every value different)"
        low, high = _range(s, integer)
        return _contract.Feature(s.name, _contract.INTEGER if integer else _contract.FLOAT, missing=tokens,
                                 on_missing=impute, low=low, high=high), ""
    values = list(s.values)
    if not s.overflow and len(values) == 1:
        return None, f"constant: every value is {values[0]!r}"
    if not s.overflow and len(values) == 2 and {v.casefold() for v in values} in _BOOL_PAIRS:
        true = tuple(v for v in values if v.casefold() in ("yes", "y", "true", "t"))
        false = tuple(v for v in values if v not in true)
        return _contract.Feature(s.name, _contract.BOOLEAN, on_missing=impute, true_values=true,
                                 false_values=false), ""
    if not s.overflow and len(values) <= MAX_CATEGORIES:
        folded = {v.casefold() for v in values}
        case = "lower" if len(folded) < len(values) else "none"
        norm = sorted({v.lower() if case == "lower" else v for v in values},
                      key=lambda v: (-sum(k for x, k in s.values.items() if (x.lower() if case == "lower" else x) == v),
                                     v))
        if _contract.MISSING_CATEGORY in norm or any(len(v) > _contract.MAX_TEXT_LENGTH for v in norm):
            return None, "text with values that cannot be categories (too long, or '(missing)')"
        unseen = "reject" if len(norm) <= REJECT_UP_TO else "ignore"
        return _contract.Feature(s.name, _contract.CATEGORICAL, on_missing=impute, values=tuple(norm), case=case,
                                 unseen=unseen), ""
    distinct = s.distinct
    if distinct >= 0.98 * present:
        if auto_id and s.blank == 0 and s.max_length <= _contract.MAX_TEXT_LENGTH:
            return None, "id"
        return None, f"near-unique text ({distinct:,} distinct values of {present:,}): an id or free text"
    return None, (f"high-cardinality text (about {distinct:,} distinct values; more than {MAX_CATEGORIES}): make "
                  "it a categorical by hand if it matters")


def _is_01(v: str) -> bool:
    try:
        return float(v) in (0.0, 1.0)
    except ValueError:
        return False


def _observed(s: ColumnStats, f: _contract.Feature) -> str:
    miss = f"{s.blank:,} missing ({s.blank / s.rows:.1%})" if s.blank else "no missing values"
    if f.missing != ("",):
        miss += f"; also missing: {', '.join(t for t in f.missing if t)}"
    if f.type in (_contract.INTEGER, _contract.FLOAT):
        return f"observed {_contract._num(s.low)} .. {_contract._num(s.high)}, {miss}"
    if f.type == _contract.BOOLEAN:
        return f"true: {'/'.join(f.true_values)}, false: {'/'.join(f.false_values)}; {miss}"
    return f"{len(f.values)} values, most frequent first; {miss}"


def _example(features: list[_contract.Feature], stats: dict[str, ColumnStats]) -> dict[str, Any]:
    """A typical, made-up request (means and most frequent values): no customer's row lands in the docs."""
    out: dict[str, Any] = {}
    for f in features:
        s = stats[f.name]
        if f.type == _contract.CATEGORICAL:
            out[f.name] = f.values[0]
        elif f.type == _contract.BOOLEAN:
            out[f.name] = False
        else:
            mean = s.total / s.numeric if s.numeric else 0.0
            mean = min(max(mean, f.low if f.low is not None else mean), f.high if f.high is not None else mean)
            out[f.name] = int(round(mean)) if f.type == _contract.INTEGER else round(mean, 2)
    return out


# --- writing the contract for a person to review -----------------------------------------

def _q(value: Any) -> str:
    """A YAML scalar that reads back as exactly this value (JSON is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def render_yaml(c: _contract.Contract, *, provenance: str, comments: dict[str, str] | None = None) -> str:
    """The contract as commented YAML (``dataset.yaml``); :func:`churn_lib.contract.load_file` reads it back."""
    comments = comments or {}
    d = c.to_dict()
    src = (f"  path: {_q(c.source.path)}  # a CSV file or glob, relative to this folder (or absolute)"
           if not c.source.is_generator else
           f"  generator: {_q(c.source.generator)}  # the lab's synthetic data (or path: FILE_OR_GLOB for a CSV)")
    out = [
        "# dataset.yaml: the dataset contract of this churn-mlops home.",
        f"# {provenance}",
        "# Review it (types, ranges, allowed values, what is dropped), then `churn run`.",
        "# Every stage, the API and the drift monitor derive their checks from this file; each",
        "# registered model keeps a copy of the contract it was trained on.",
        f"format: {_contract.FORMAT}",
        f"name: {_q(c.name)}",
        f"description: {_q(c.description)}",
        "source:",
        src,
        f"id: {_q(list(c.id))}  # the customer's id: echoed by the API, logged, used to join outcomes",
        "target:",
        f"  column: {_q(c.target.column)}",
        f"  positive: {_q(list(c.target.positive))}  # churned (1)",
        f"  negative: {_q(list(c.target.negative))}  # stayed (0)",
        "# Per feature: type (integer, float, boolean, categorical); missing: the tokens that mean no value;",
        "# on_missing: drop (rows without it are dropped, the API requires it) or impute (the model fills it in:",
        "# the median, or the category '(missing)'); range: valid [low, high], null for no bound; values: the",
        "# allowed categories after normalisation (strip, case: none/lower/upper); unseen: reject (a quality",
        "# violation, 422 at the API) or ignore (scored as no category).",
        "features:",
    ]
    for name, spec in d["features"].items():
        note = comments.get(name)
        if note:
            out.append(f"  # {note}")
        out.append(f"  {_q(name)}:")
        for key, value in spec.items():
            out.append(f"    {key}: {_q(value)}")
    out.append("# Columns of the file that no stage uses, and why (move one to features: to use it).")
    if d["dropped"]:
        out.append("dropped:")
        for item in d["dropped"]:
            out.append(f"  - {{column: {_q(item['column'])}, reason: {_q(item['reason'])}}}")
    else:
        out.append("dropped: []")
    out += [
        "# The gate's dataset-specific defaults (train parameters override them).",
        "gate:",
        f"  min_f1: {_q(c.gate.min_f1)}  # an absolute F1 floor at the stored threshold, e.g. 0.6; null: none",
        f"  baseline_margin: {_q(c.gate.baseline_margin)}  # F1 above every trivial baseline by at least this",
        f"  regression_tolerance: {_q(c.gate.regression_tolerance)}  # F1 not below the current model's by more",
        "# Example requests for the API's documentation (made up from means and most frequent values).",
        f"examples: {_q(d.get('examples', []))}",
    ]
    return "\n".join(out) + "\n"


# --- a new home ---------------------------------------------------------------------------

@dataclass
class InitResult:
    """What ``churn init`` did: the home, its contract file, and (from a file) the decisions."""

    home: str
    contract_path: str
    contract: _contract.Contract
    inferred: Inferred | None = None

    def summary(self) -> str:
        c = self.contract
        if self.inferred is None:
            return (f"created the home {self.home} with the lab's contract ({self.contract_path}); "
                    "`churn run` generates the lab's data and trains v1")
        kinds = Counter(f.type for f in c.features)
        return (f"created the home {self.home}: {self.contract_path} from {self.inferred.source} "
                f"({self.inferred.rows:,} rows): target {c.target.column} (churned: {', '.join(c.target.positive)}), "
                f"id {', '.join(c.id) or 'none'}, {len(c.features)} features ("
                + ", ".join(f"{k} {t}" for t, k in sorted(kinds.items())) + f"), {len(c.dropped)} dropped. "
                "Review the file, then `churn run`.")


def init_home(root: str | Path, *, data: str | Path | None = None, target: str | None = None,
              positive: Sequence[str] | None = None, ids: Sequence[str] = (), name: str | None = None,
              force: bool = False) -> InitResult:
    """Create a home (marker, folders, ``dataset.yaml``): from a CSV file, or with the lab's contract.

    Raises
    ------
    InvalidParameter
        ``dataset.yaml`` exists (without ``force``), ``--data`` without ``--target`` (or the reverse),
        or the file's target / ids do not fit (see :func:`infer`).
    DataError
        The file cannot be read.
    """
    import yaml

    from ._io import atomic_write_text, utc_now
    from .home import MARKER, Home

    root = Path(root).expanduser().resolve()
    path = _contract.path_in(root)
    if path.exists() and not force:
        raise InvalidParameter(f"{path} exists already; pass --force to replace it (registered models keep the "
                               "contract they were trained on)", name="force")
    if (data is None) != (target is None):
        raise InvalidParameter("--data and --target go together: --data FILE --target COLUMN", name="target")
    inferred = None
    if data is None:
        contract = _contract.lab()
        text = render_yaml(contract, provenance=f"Written by `churn init` on {utc_now()[:10]}: the lab's "
                                                "contract (the embedded default).")
    else:
        data = Path(data).expanduser().resolve()
        source = str(data.relative_to(root)) if data.is_relative_to(root) else str(data)
        inferred = infer(data, target=target, positive=positive, ids=ids, name=name, source=source)
        contract = inferred.contract
        text = render_yaml(contract, comments=inferred.comments,
                           provenance=f"Written by `churn init` from {data} ({inferred.rows:,} rows) on "
                                      f"{utc_now()[:10]}.")
    if _contract.from_dict(yaml.safe_load(text)) != contract:  # pragma: no cover - a bug in rendering
        raise AssertionError("the rendered dataset.yaml does not read back as the inferred contract")
    home = Home(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    home.ensure()
    atomic_write_text(path, text)
    return InitResult(str(root), str(path), contract, inferred)
