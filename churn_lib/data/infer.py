"""Inferring a dataset contract from a CSV file (``churn init --data FILE --target COLUMN``).

The whole file is profiled, every cell as text, by DuckDB in two streaming
passes (:func:`profile_file`); per column only bounded statistics come back
(counts, min, max, sum, up to :data:`MAX_TRACKED` distinct values, an
approximate distinct count, each numeric column's range per target label,
whether a value goes with both labels, how many values repeat in a column that
may be unique), and DuckDB works within :data:`MEMORY_LIMIT`, so memory does
not grow with the file. Then each column gets a role and a type:

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
  empty in more than half of the rows is dropped as mostly empty;
* leaks (on :data:`LEAK_MIN_ROWS` rows or more): a ``row number`` (the
  integers a..a+n-1, each once), a ``unique key`` (every value different, text
  or whole numbers, not a float measurement) and a column that ``leaks the
  target`` (each value, or each side of one threshold, goes with one label)
  are dropped with the reason; ``--keep COLUMN`` makes a feature of one anyway.

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

import pandas as pd

from .. import _duck
from .. import contract as _contract
from .._io import atomic_write_text, utc_now
from ..home import MARKER, Home
from . import parquet
from .dialect import sniff
from .ingest import csv_error, read_header, source_files
from ..exceptions import ContractError, DataError, InvalidParameter

#: Distinct values tracked per column; beyond, only the sketch counts them.
MAX_TRACKED = 200
#: Most values a text column may have to be a categorical feature.
MAX_CATEGORIES = 50
#: Categoricals with up to this many values reject unseen ones; larger ones score them as "no category".
REJECT_UP_TO = 20
#: A text column with at least this share of distinct values is an id candidate (or free text).
NEAR_UNIQUE = 0.9
#: Columns missing in a larger share of rows are dropped (the prepare stage's max_imputed_rate).
MOSTLY_EMPTY = 0.5
#: Rows of the head of the file that decide which columns are parsed as numbers.
SAMPLE_ROWS = 20_000
#: DuckDB's memory for profiling (it spills beyond): the profile's memory does not grow with the file.
MEMORY_LIMIT = "512MB"
#: Fewer rows than this and a column is unique, or separates the labels, by chance: no leak checks.
LEAK_MIN_ROWS = 50
#: Rows each target label needs before a column that separates them counts as a leak.
LEAK_MIN_LABEL = 5
#: Rows per distinct value (the blank counts as one) before "each value has one label" counts as a leak.
LEAK_ROWS_PER_VALUE = 5
#: Tokens that may mean "missing" in an otherwise numeric column (compared case-folded).
MISSING_WORDS = ("na", "n/a", "nan", "null", "none", "?", "-", "--", "missing", "#n/a")
_POSITIVE_WORDS = ("1", "yes", "y", "true", "t", "churn", "churned", "left", "lost", "lapsed", "cancelled",
                   "canceled", "inactive", "exited", "attrited")
_BOOL_PAIRS = ({"yes", "no"}, {"y", "n"}, {"true", "false"}, {"t", "f"})
_ID_NAME = re.compile(r"(^|[_\s-])id$|^id([_\s-]|$)|[a-z]Id$|ID$", re.IGNORECASE)


@dataclass
class ColumnStats:
    """Bounded statistics of one column of text cells (what :func:`profile_file` gathers)."""

    name: str
    rows: int = 0
    blank: int = 0
    numeric: int = 0
    whole: int = 0
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    values: Counter = field(default_factory=Counter)   # every (stripped) value with its count, when few
    overflow: bool = False                             # more than MAX_TRACKED distinct values: not listed
    others: Counter = field(default_factory=Counter)   # non-numeric, non-blank values of a numeric candidate
    others_overflow: bool = False
    max_length: int = 0
    approx_distinct: int = 0
    repeated: int | None = None                        # values seen more than once (counted when maybe unique)
    mixed: bool | None = None                          # a value (or the blank) seen with both target labels
    by_label: dict[str, tuple[int, float, float, int]] = field(default_factory=dict)
    """Per target label: rows with a number, their min and max, rows without one (numeric candidates)."""
    parquet_type: str = ""                             # a Parquet column's type (DuckDB's name), "" for CSV
    kind: str = "text"                                 # a Parquet column's kind (:func:`.parquet.kind`)

    @property
    def present(self) -> int:
        return self.rows - self.blank

    @property
    def distinct(self) -> int:
        """Distinct non-blank values: exact when few, else estimated (HyperLogLog, about 2 % error)."""
        if not self.overflow:
            return len(self.values)
        return min(self.approx_distinct, self.present)

    @property
    def unique(self) -> bool:
        """Exactly: a value in every row, each value in one row only."""
        if self.blank or not self.rows:
            return False
        if not self.overflow:
            return all(n == 1 for n in self.values.values())
        return self.repeated == 0

    @property
    def integer(self) -> bool:
        """Every value a whole number (no missing-value words either)."""
        return self.is_numeric and self.whole == self.numeric == self.present and not self.missing_tokens()

    def missing_tokens(self) -> tuple[str, ...]:
        """Non-numeric tokens of a mostly numeric column that mean "missing" (none: the column is text)."""
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


# --- profiling the file (DuckDB) -----------------------------------------------------------

@dataclass
class _Scan:
    """The SQL pieces of one scan of the source, every cell as text: the source (CSV in its dialect, or
    Parquet with each column cast to text), its arguments, each column trimmed and parsed."""

    files: tuple[Path, ...]
    columns: tuple[str, ...]
    target: str | None
    dialect: _contract.CsvDialect | None  # None: Parquet

    @property
    def src(self) -> str:
        if self.dialect is None:
            cast = ", ".join(f"CAST({_duck.ident(c)} AS VARCHAR) AS {_duck.ident(c)}" for c in self.columns)
            return f"(SELECT {cast} FROM read_parquet($files))"
        return ("read_csv($files, header=true, all_varchar=true, delim=$sep, quote='\"', escape='\"', "
                "strict_mode=true, auto_detect=false, columns=$columns)")

    @property
    def args(self) -> dict[str, Any]:
        files = [str(p) for p in self.files]
        if self.dialect is None:
            return {"files": files}
        return {"files": files, "sep": self.dialect.sep, "columns": {c: "VARCHAR" for c in self.columns}}

    def text(self, k: int) -> str:
        return f"trim({_duck.ident(self.columns[k])})"

    def number(self, k: int) -> str:
        if self.dialect is not None and self.dialect.decimal == ",":  # 12,5 is a number; 12.5 is not (ingest refuses it)
            return (f"TRY_CAST(CASE WHEN contains({self.text(k)}, '.') THEN NULL ELSE replace({self.text(k)}, ',', '.') "
                    "END AS DOUBLE)")
        return f"TRY_CAST({self.text(k)} AS DOUBLE)"

    @property
    def label(self) -> str:
        """The row's target label (NULL when blank, or without a target)."""
        return f"NULLIF(trim({_duck.ident(self.target)}), '')" if self.target else "NULL::VARCHAR"


def profile_file(path: Path | Sequence[Path], *, sample_rows: int = SAMPLE_ROWS, target: str | None = None,
                 dialect: _contract.CsvDialect | None = _contract.CsvDialect()
                 ) -> tuple[tuple[str, ...], dict[str, ColumnStats], int]:
    """Profile every column of ``path`` (all cells as text) in two streaming passes; return the columns,
    their statistics and the row count.

    DuckDB scans the CSV in ``dialect``, or the Parquet file(s) when ``dialect``
    is None (vectorised, both cores, within :data:`MEMORY_LIMIT`; Parquet row
    group by row group, each column cast to text as stage 01 writes it):
    the first pass counts blanks, lengths and distinct values of every column,
    and parses as numbers the columns whose first ``sample_rows`` rows look
    numeric (parsing every text column costs more than the rest together);
    the second lists the values of the columns with few of them (with whether a
    value goes with both labels of ``target``), the words in the numeric ones,
    each numeric column's range per target label, and how many values repeat in
    a column whose values may all be different (what :func:`infer` needs to
    find row numbers, keys and columns that leak the target).

    Raises
    ------
    DataError
        Not UTF-8, separated otherwise than ``dialect`` says, unreadable, a Parquet column nested or binary,
        or no rows.
    """
    import duckdb

    files = (path,) if isinstance(path, (str, Path)) else tuple(path)
    files = tuple(Path(p) for p in files)
    kinds: dict[str, parquet.Column] = {}
    if dialect is None:
        kinds = {c.name: c for c in parquet.read_schema(files)}
        columns = tuple(kinds)
    else:
        columns = read_header(files[0], dialect, hint="pass init --sep").columns
    scan = _Scan(files, columns, target if target in columns else None, dialect)
    con = _duck.connect(MEMORY_LIMIT, ordered=False)
    try:
        candidates = _numeric_candidates(con, scan, sample_rows)
        stats, rows = _first_pass(con, scan, candidates)
        few = [k for k, c in enumerate(columns) if stats[c].approx_distinct <= MAX_TRACKED * 1.1]
        maybe_unique = [k for k, c in enumerate(columns) if k not in few and not stats[c].blank
                        and stats[c].approx_distinct >= NEAR_UNIQUE * rows]
        found = _second_pass(con, scan, few, candidates, maybe_unique)
    except duckdb.Error as exc:
        if dialect is None:
            raise parquet.locate_damage(con, files[0], tuple(kinds.values()), exc) from None
        raise csv_error(files[0], exc) from None
    finally:
        con.close()
    if rows == 0:
        raise DataError(f"{files[0]} has a header but no rows" if dialect is not None else f"{files[0]} has no rows",
                        path=str(files[0]))
    _record(stats, scan, found, few)
    for name, col in kinds.items():
        stats[name].parquet_type, stats[name].kind = col.type, col.kind
    return columns, stats, rows


def _numeric_candidates(con: Any, scan: _Scan, sample_rows: int) -> list[int]:
    """Columns whose first ``sample_rows`` rows are numbers, give or take a few missing-value words."""
    n = range(len(scan.columns))
    sample = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {scan.text(k)} <> '' AND isfinite({scan.number(k)}) "
                              f"IS NOT TRUE), count(*) FILTER (WHERE {scan.text(k)} <> '')" for k in n)
        + f" FROM (SELECT * FROM {scan.src} LIMIT {int(sample_rows)})", scan.args).fetchone()
    return [k for k in n if sample[2 * k + 1] == 0 or sample[2 * k] <= max(3, 0.05 * sample[2 * k + 1])]


def _first_pass(con: Any, scan: _Scan, candidates: list[int]) -> tuple[dict[str, ColumnStats], int]:
    """Per column: blanks, longest value, approximate distinct count; per numeric candidate its numbers."""
    columns = scan.columns
    aggs = ["count(*)"]
    for k, c in enumerate(columns):
        t = scan.text(k)
        aggs += [f"count(*) FILTER (WHERE {t} IS NULL OR {t} = '')", f"max(length({_duck.ident(c)}))",
                 f"approx_count_distinct({t})"]
    for k in candidates:
        x, finite = f"n{k}", f"FILTER (WHERE isfinite(n{k}))"
        aggs += [f"count({x}) {finite}", f"count({x}) FILTER (WHERE isfinite({x}) AND {x} = round({x}))",
                 f"min({x}) {finite}", f"max({x}) {finite}", f"sum({x}) {finite}"]
    inner = ", ".join([_duck.ident(c) for c in columns] + [f"{scan.number(k)} AS n{k}" for k in candidates])
    first = con.execute(f"SELECT {', '.join(aggs)} FROM (SELECT {inner} FROM {scan.src})", scan.args).fetchone()
    rows = int(first[0])
    stats = {}
    for k, c in enumerate(columns):
        blank, length, approx = first[1 + 3 * k: 4 + 3 * k]
        stats[c] = ColumnStats(c, rows=rows, blank=int(blank), max_length=int(length or 0),
                               approx_distinct=int(approx or 0))
    base = 1 + 3 * len(columns)
    for j, k in enumerate(candidates):
        numeric, whole, low, high, total = first[base + 5 * j: base + 5 * j + 5]
        s = stats[columns[k]]
        s.numeric, s.whole = int(numeric), int(whole)
        if numeric:
            s.low, s.high, s.total = float(low), float(high), float(total)
    return stats, rows


def _second_pass(con: Any, scan: _Scan, few: list[int], candidates: list[int],
                 maybe_unique: list[int]) -> list[tuple]:
    """One scan, four kinds of rows ``(kind, column, value, n, low, high, extra)``:

    * ``v``: each value (NULL: the blank) of a column with few values, its count, and ``extra`` 1 when it
      goes with both target labels;
    * ``o``: each word in a numeric candidate;
    * ``s``: per target label, a numeric candidate's count of numbers, their min and max, and ``extra``
      the rows without a number;
    * ``d``: in a column whose values may all be different, ``n`` values that repeat.
    """
    label = scan.label
    parts = [f"SELECT 'v' AS kind, {k} AS col, NULLIF({scan.text(k)}, '') AS value, count(*) AS n, "
             f"NULL::DOUBLE AS low, NULL::DOUBLE AS high, (min({label}) IS DISTINCT FROM max({label}))::BIGINT "
             "AS extra FROM scan GROUP BY ALL" for k in few]
    parts += [f"SELECT 'o', {k}, {scan.text(k)}, count(*), NULL, NULL, NULL FROM scan WHERE {scan.text(k)} <> '' "
              f"AND isfinite({scan.number(k)}) IS NOT TRUE GROUP BY ALL" for k in candidates]
    if scan.target:
        for k in candidates:
            x = scan.number(k)
            parts.append(f"SELECT 's', {k}, {label}, count(*) FILTER (WHERE isfinite({x})), min({x}) FILTER (WHERE "
                         f"isfinite({x})), max({x}) FILTER (WHERE isfinite({x})), count(*) FILTER (WHERE "
                         f"isfinite({x}) IS NOT TRUE) FROM scan GROUP BY ALL")
    parts += [f"SELECT 'd', {k}, NULL, count(*), NULL, NULL, NULL FROM (SELECT {scan.text(k)} FROM scan "
              f"GROUP BY ALL HAVING count(*) > 1)" for k in maybe_unique]
    if not parts:
        return []
    return con.execute(f"WITH scan AS (SELECT * FROM {scan.src}) " + " UNION ALL ".join(parts), scan.args).fetchall()


def _record(stats: dict[str, ColumnStats], scan: _Scan, found: list[tuple], few: list[int]) -> None:
    """Put the second pass's rows into the columns' statistics."""
    for kind, k, value, n, low, high, extra in found:
        s = stats[scan.columns[k]]
        if kind == "v":
            s.mixed = bool(s.mixed) or bool(extra)
            if value is not None:
                s.values[value] = int(n)
        elif kind == "o":
            s.others[value] = int(n)
        elif kind == "s" and value is not None:
            s.by_label[value] = (int(n), low, high, int(extra))
        elif kind == "d":
            s.repeated = int(n)
    for k, c in enumerate(scan.columns):
        s = stats[c]
        s.overflow = k not in few or len(s.values) > MAX_TRACKED
        if s.overflow:
            s.values, s.mixed = Counter(), None
        if len(s.others) > 50:
            s.others_overflow, s.others = True, Counter(dict(s.others.most_common(50)))


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
    labels = sorted(s.values, key=lambda v: (-s.values[v], v))  # most frequent first; ties by name
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
          keep: Sequence[str] = (), name: str | None = None, source: str | None = None,
          sample_rows: int = SAMPLE_ROWS, dialect: _contract.CsvDialect | None = None) -> Inferred:
    """Infer a contract from a CSV or Parquet file (or a glob of files with the same columns).

    Parameters
    ----------
    path : path or glob
        The CSV (UTF-8) or Parquet file(s); Parquet by name (``.parquet``) or by its first bytes.
    target : str
        The churn column.
    positive : sequence of str, optional
        The label(s) meaning churned (default: recognised, e.g. ``Yes`` or ``1``).
    ids : sequence of str, default=()
        Id column(s); default the first column whose values are all different.
    keep : sequence of str, default=()
        Columns to keep as features although they look like a leak (a row number, a unique key, a column
        that separates the target); the printed table and the YAML comment still say why.
    name : str, optional
        The contract's name (default the file's stem).
    source : str, optional
        ``source.path`` to write (default ``path`` as given).
    sample_rows : int, default=SAMPLE_ROWS
        Rows of the head of the file that decide which columns are parsed as numbers.
    dialect : CsvDialect, optional
        The CSV's separator and decimal mark (default: sniffed from its head, :func:`.dialect.sniff`);
        written to the contract's ``source.csv``.

    Returns
    -------
    Inferred

    Raises
    ------
    InvalidParameter
        A target that is not binary, a positive label that does not occur, an unknown column, a kept column
        that is the target or an id, one init cannot make a feature, or a dialect given for Parquet.
    DataError
        The file cannot be read as CSV or Parquet; a Parquet target that is not a label.
    """
    files, dialect = _files(path, target, dialect)
    columns, stats, rows = profile_file(files, sample_rows=sample_rows, target=target, dialect=dialect)
    _check_named(path, columns, target=target, ids=ids, keep=keep)
    tgt = _target(stats[target], positive)
    roles = _Roles(ids=list(ids))
    for col in columns:
        roles.assign(stats[col], stats[target], tgt, given=col in ids, kept=col in keep)
    if not roles.features:
        raise InvalidParameter(f"{path} has no column init can use as a feature (every column is the target, an "
                               "id or dropped; see the table)", name="data")
    contract = _contract.Contract(
        name=name or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(path)).stem) or "dataset",
        source=_contract.Source(generator=None, path=source or str(path), csv=dialect or _contract.CsvDialect()),
        target=tgt, features=tuple(roles.features), id=tuple(roles.ids), dropped=tuple(roles.dropped),
        gate=_contract.Gate(), examples=(_example(roles.features, stats),),
        description=f"Inferred by churn init from {Path(str(path)).name} ({rows:,} rows); reviewed by: (nobody yet)")
    return Inferred(contract, roles.decisions, rows, str(path), roles.comments)


def _files(path: str | Path, target: str, dialect: _contract.CsvDialect | None
           ) -> tuple[list[Path], _contract.CsvDialect | None]:
    """The files ``path`` names and their dialect (None: Parquet, its target checked; else given or sniffed)."""
    files = source_files(str(path), root=Path.cwd())
    formats = {parquet.is_parquet(p) for p in files}
    if len(formats) > 1:
        raise DataError(f"{path} names both Parquet and CSV files: give one or the other", path=str(path))
    if formats == {False}:
        return files, dialect or sniff(files[0])
    if dialect is not None:
        raise InvalidParameter("--sep and --decimal describe a CSV file; the data is Parquet", name="sep")
    parquet.check_target(files[0], parquet.read_schema(files), target)
    return files, None


def _check_named(path: Path, columns: Sequence[str], *, target: str, ids: Sequence[str],
                 keep: Sequence[str]) -> None:
    """Every column named on the command line is in the file, and a kept one is not the target or an id."""
    for col, what in [(target, "target"), *((i, "id") for i in ids), *((k, "keep") for k in keep)]:
        if col not in columns:
            raise InvalidParameter(f"{what} column {col!r} is not in {path} (columns: {', '.join(columns)})",
                                   name=what)
    for col in keep:
        if col == target or col in ids:
            raise InvalidParameter(f"--keep {col}: that column is the {'target' if col == target else 'id'}; "
                                   "--keep makes a feature of a column init would drop", name="keep")


@dataclass
class _Roles:
    """The columns' roles as :func:`infer` assigns them, one column at a time."""

    ids: list[str]
    features: list[_contract.Feature] = field(default_factory=list)
    dropped: list[_contract.Dropped] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    comments: dict[str, str] = field(default_factory=dict)

    def assign(self, s: ColumnStats, target: ColumnStats, tgt: _contract.Target, *, given: bool,
               kept: bool) -> None:
        """Make ``s`` the target, an id (given, or the first all-different column), a feature, or a dropped one."""
        col = s.name
        if col == tgt.column:
            self.decisions.append(Decision(col, "target", "", s.blank, len(s.values), f"churned: "
                                           f"{', '.join(tgt.positive)}; stayed: {', '.join(tgt.negative)}"))
            return
        if given:
            self.decisions.append(Decision(col, "id", "", s.blank, s.distinct, "given with --id"))
            return
        feature, reason = _decide(s, target, auto_id=not self.ids and not kept, leaks=not kept)
        if reason == "id":
            self.ids.append(col)
            self.decisions.append(Decision(col, "id", "", s.blank, s.distinct,
                                           "every value different: taken as the customer id (--id to choose another)"))
        elif feature is None and kept:
            raise InvalidParameter(f"--keep {col}: init cannot make {col} a feature ({reason}); describe it in "
                                   "dataset.yaml by hand", name="keep")
        elif feature is None:
            self.dropped.append(_contract.Dropped(col, reason))
            self.decisions.append(Decision(col, "dropped", "", s.blank, s.distinct, reason))
        else:
            note = _observed(s, feature)
            leak = _leak(s, target) if kept else None
            self.comments[col] = (f"kept with --keep ({leak}); " if leak else "") + note
            self.features.append(feature)
            self.decisions.append(Decision(col, "feature", feature.type, s.blank, s.distinct, self.comments[col]))


# --- leaks: columns that look usable and must not be features ------------------------------

def _leak(s: ColumnStats, target: ColumnStats) -> str | None:
    """Why a column must not be a feature although its values look usable (None when it may be one).

    A row number (the integers a..a+n-1, each once: the file's order, or a
    shuffle of it) and a unique key (every value different, text or whole
    numbers; a float measurement may be all different and still a feature) name
    a row, so a model can only memorise them; a column whose every value, or
    each side of one threshold, goes with a single label is the target in
    disguise (recorded after the fact, like a cancellation date).
    """
    if s.rows < LEAK_MIN_ROWS:
        return None
    if s.integer and s.unique and s.high - s.low == s.rows - 1:
        return (f"row number: the integers {_contract.number_text(s.low)} to {_contract.number_text(s.high)}, "
                "each once")
    if s.unique and (s.integer or not s.is_numeric):
        return "unique key: every value different (" + ("an id number)" if s.integer else "an id or free text)")
    return _leaks_target(s, target)


def _leaks_target(s: ColumnStats, target: ColumnStats) -> str | None:
    """"leaks the target: ..." when each value, or each side of one threshold, goes with one label only."""
    labels = target.values
    if len(labels) != 2 or min(labels.values()) < LEAK_MIN_LABEL:
        return None  # a label seen a few times is easily "separated" by chance
    groups = len(s.values) + (1 if s.blank else 0)
    if s.mixed is False and s.rows >= LEAK_ROWS_PER_VALUE * groups:
        return (f"leaks the target: each value{' (and the blank)' if s.blank else ''} has one label of "
                f"{target.name}")
    if not s.is_numeric or len(s.by_label) != 2:
        return None
    (below, (n_below, _, top, miss_below)), (above, (n_above, bottom, _, miss_above)) = sorted(
        s.by_label.items(), key=lambda kv: kv[1][1] if kv[1][0] else math.inf)
    if min(n_below, n_above) >= LEAK_MIN_LABEL and top < bottom and not (miss_below and miss_above):
        return (f"leaks the target: every value up to {_contract.number_text(top)} is {below}, every value from "
                f"{_contract.number_text(bottom)} is {above}")
    return None


# --- the type of a usable column -------------------------------------------------------------

def _decide(s: ColumnStats, target: ColumnStats, *, auto_id: bool,
            leaks: bool) -> tuple[_contract.Feature | None, str]:
    """A feature for the column, or None and why not (``"id"``: it is the customer id)."""
    if s.kind == "datetime":
        return None, (f"a date or time (Parquet {s.parquet_type}): derive a number from it (e.g. days since) to "
                      "use it as a feature")
    if s.present == 0:
        return None, "empty: no value in any row"
    if s.blank > MOSTLY_EMPTY * s.rows:
        return None, f"mostly empty ({s.blank / s.rows:.0%} of the rows have no value)"
    if auto_id and _is_id(s):
        return None, "id"
    reason = _leak(s, target) if leaks else None
    if reason:
        return None, reason
    return _numeric_feature(s) if s.is_numeric else _text_feature(s)


def _is_id(s: ColumnStats) -> bool:
    """The customer id, when none is given: all (or nearly all) different, a whole number named like an id or
    short text in every row."""
    if s.is_numeric:
        return s.whole == s.numeric and s.distinct >= NEAR_UNIQUE * s.present and s.present > 50 and \
            bool(_ID_NAME.search(s.name))
    many = s.overflow or len(s.values) > MAX_CATEGORIES
    return many and s.distinct >= NEAR_UNIQUE * s.present and s.blank == 0 and \
        s.max_length <= _contract.MAX_TEXT_LENGTH


def _numeric_feature(s: ColumnStats) -> tuple[_contract.Feature | None, str]:
    impute = "impute" if s.blank or s.missing_tokens() else "drop"
    tokens = tuple(sorted({"", *s.missing_tokens()}))
    numeric_values = set(s.values) - set(s.missing_tokens())
    if not s.overflow and numeric_values and all(_is_01(v) for v in numeric_values) and len(numeric_values) == 2:
        return _contract.Feature(s.name, _contract.BOOLEAN, missing=tokens, on_missing=impute,
                                 true_values=tuple(sorted(v for v in numeric_values if float(v) == 1)),
                                 false_values=tuple(sorted(v for v in numeric_values if float(v) == 0))), ""
    if not s.overflow and len(numeric_values) == 1:
        return None, f"constant: every value is {next(iter(numeric_values))}"
    integer = s.whole == s.numeric
    if integer and s.distinct >= NEAR_UNIQUE * s.present and s.present > 50 and _ID_NAME.search(s.name):
        return None, "an id-like number (every value different)"
    low, high = _range(s, integer)
    return _contract.Feature(s.name, _contract.INTEGER if integer else _contract.FLOAT, missing=tokens,
                             on_missing=impute, low=low, high=high), ""


def _text_feature(s: ColumnStats) -> tuple[_contract.Feature | None, str]:
    impute = "impute" if s.blank else "drop"
    values = list(s.values)
    if not s.overflow and len(values) == 1:
        return None, f"constant: every value is {values[0]!r}"
    if not s.overflow and len(values) == 2 and {v.casefold() for v in values} in _BOOL_PAIRS:
        true = tuple(v for v in values if v.casefold() in ("yes", "y", "true", "t"))
        false = tuple(v for v in values if v not in true)
        return _contract.Feature(s.name, _contract.BOOLEAN, on_missing=impute, true_values=true,
                                 false_values=false), ""
    if not s.overflow and len(values) <= MAX_CATEGORIES:
        return _categorical(s, impute)
    distinct = s.distinct
    if distinct >= NEAR_UNIQUE * s.present:
        return None, f"near-unique text ({distinct:,} distinct values of {s.present:,}): an id or free text"
    return None, (f"high-cardinality text (about {distinct:,} distinct values; more than {MAX_CATEGORIES}): make "
                  "it a categorical by hand if it matters")


def _categorical(s: ColumnStats, impute: str) -> tuple[_contract.Feature | None, str]:
    values = list(s.values)
    folded = {v.casefold() for v in values}
    case = "lower" if len(folded) < len(values) else "none"
    norm = sorted({v.lower() if case == "lower" else v for v in values},
                  key=lambda v: (-sum(k for x, k in s.values.items() if (x.lower() if case == "lower" else x) == v), v))
    if _contract.MISSING_CATEGORY in norm or any(len(v) > _contract.MAX_TEXT_LENGTH for v in norm):
        return None, "text with values that cannot be categories (too long, or '(missing)')"
    unseen = "reject" if len(norm) <= REJECT_UP_TO else "ignore"
    return _contract.Feature(s.name, _contract.CATEGORICAL, on_missing=impute, values=tuple(norm), case=case,
                             unseen=unseen), ""


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
        return f"observed {_contract.number_text(s.low)} .. {_contract.number_text(s.high)}, {miss}"
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
    if c.source.is_generator:
        src = f"  generator: {_q(c.source.generator)}  # the lab's synthetic data (or path: FILE_OR_GLOB for a CSV)"
    elif c.source.is_parquet:
        src = f"  path: {_q(c.source.path)}  # a Parquet file or glob, relative to this folder (or absolute)"
    else:
        dialect = c.source.csv
        src = (f"  path: {_q(c.source.path)}  # a CSV file or glob, relative to this folder (or absolute)\n"
               f"  csv: {{sep: {_q(dialect.sep)}, decimal: {_q(dialect.decimal)}}}  # sniffed by churn init "
               f"({dialect.describe()}): check it; sep is one of , ; \\t |, decimal . or ,")
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


def _dialect(data: Path, sep: str | None, decimal: str | None) -> _contract.CsvDialect | None:
    """The dialect ``--sep`` / ``--decimal`` give (the other sniffed), or None to sniff both."""
    if sep is None and decimal is None:
        return None
    sniffed = sniff(source_files(str(data), root=data.parent)[0])
    sep = sep if sep is not None else sniffed.sep
    try:
        if decimal is None:
            decimal = "." if sep == "," else sniffed.decimal
        return _contract.CsvDialect(sep=sep, decimal=decimal)
    except ContractError as exc:
        raise InvalidParameter(str(exc).replace("source.csv.", "--").replace("source.csv", "--sep, --decimal"),
                               name="sep" if "sep" in str(exc) else "decimal") from None


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
              positive: Sequence[str] | None = None, ids: Sequence[str] = (), keep: Sequence[str] = (),
              name: str | None = None, force: bool = False, sep: str | None = None,
              decimal: str | None = None) -> InitResult:
    """Create a home (marker, folders, ``dataset.yaml``): from a CSV or Parquet file, or with the lab's contract.

    Parameters
    ----------
    root : path
        The home's folder (created when missing).
    data, target, positive, ids, keep, name, sep, decimal
        The CSV or Parquet file (or glob) and what :func:`infer` takes, ``sep`` and ``decimal`` making its
        ``dialect`` (without ``data``: the lab's contract).
    force : bool, default=False
        Replace an existing ``dataset.yaml``.

    Returns
    -------
    InitResult

    Raises
    ------
    InvalidParameter
        ``dataset.yaml`` exists (without ``force``), ``--data`` without ``--target`` (or the reverse),
        ``--keep`` without ``--data``, or the file's target / ids / kept columns do not fit (see :func:`infer`).
    DataError
        The file cannot be read.
    """
    import yaml

    root = Path(root).expanduser().resolve()
    path = _contract.path_in(root)
    if path.exists() and not force:
        raise InvalidParameter(f"{path} exists already; pass --force to replace it (registered models keep the "
                               "contract they were trained on)", name="force")
    if (data is None) != (target is None):
        raise InvalidParameter("--data and --target go together: --data FILE --target COLUMN", name="target")
    if keep and data is None:
        raise InvalidParameter("--keep names a column of --data FILE; the lab's contract drops none", name="keep")
    inferred = None
    if data is None:
        contract = _contract.lab()
        text = render_yaml(contract, provenance=f"Written by `churn init` on {utc_now()[:10]}: the lab's "
                                                "contract (the embedded default).")
    else:
        data = Path(data).expanduser().absolute().parent.resolve() / Path(data).name  # a glob stays a glob
        inferred = infer(data, target=target, positive=positive, ids=ids, keep=keep, name=name,
                         source=str(data.relative_to(root)) if data.is_relative_to(root) else str(data),
                         dialect=_dialect(data, sep, decimal))
        contract = inferred.contract
        text = render_yaml(contract, comments=inferred.comments,
                           provenance=f"Written by `churn init` from {data} ({inferred.rows:,} rows) on "
                                      f"{utc_now()[:10]}.")
    if _contract.from_dict(yaml.safe_load(text)) != contract:  # pragma: no cover - a bug in rendering
        raise AssertionError("the rendered dataset.yaml does not read back as the inferred contract")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    Home(root).ensure()
    atomic_write_text(path, text)
    return InitResult(str(root), str(path), contract, inferred)
