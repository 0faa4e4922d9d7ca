"""Preparation: the contract's cleaning plus data quality checks.

:func:`check_and_clean` turns a raw frame into a clean one and a
:class:`QualityReport` (every check with its verdict and detail).
:func:`prepare` is the stage: read ``data/raw.csv``, check, and only when no
blocking check failed write ``data/processed.csv``, ``data/quality_report.json``
and the lab's ``registry/train_stats.json``.

The rules come from the dataset contract (:func:`churn_lib.contract.check_frame`
computes them); this module holds the thresholds over their counts
(:class:`Thresholds`):

* ``schema``: the header names the contract's columns, no more (blocking).
* ``missing_rate``: per column, counted on the raw values before any
  conversion; above ``max_missing_rate`` (5 %) blocks, below it the rows are
  dropped (``on_missing: drop``, the target, ids); a feature the model fills
  in (``on_missing: impute``) keeps its rows and blocks above
  ``max_imputed_rate`` (50 %).
* ``numeric_type``, ``range``, ``allowed_categories``, ``target_values``,
  ``id_values``: rows that break them are dropped when they are at most
  ``max_invalid_rate`` of the rows of that column, else the stage stops.
* ``duplicates``: exact duplicate rows are counted and reported. They are kept
  by default: the lab's data has no customer key, and exact repeats arise by
  chance at scale (0 % of 1,200 default rows, 4.5 % of 1 million, 31 % of 10
  million). ``drop_duplicates=True`` drops them; ``max_duplicate_rate`` below 1 blocks.
* ``duplicate_ids``: rows whose id repeats an earlier row's (contracts with an
  id); reported, dropped with ``drop_duplicates``, blocking above ``max_duplicate_rate``.
* ``min_rows`` / ``both_classes``: at least ``min_clean_rows`` rows, and two of
  each class, remain (blocking).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import contract as _contract
from ._io import atomic_write_json
from ._params import UNIT, Range, check_fields, param
from .data import read_csv, write_csv
from .exceptions import QualityError
from .home import Home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Quality thresholds (rates are shares of rows, 0..1); the prepare stage's parameters."""

    max_missing_rate: float = param(0.05, "block when a column has a larger share of empty values", range=UNIT)
    max_imputed_rate: float = param(0.5, "block when a feature the model fills in is empty in a larger share "
                                         "of rows", range=UNIT)
    max_invalid_rate: float = param(0.01, "block when a rule would drop a larger share of rows", range=UNIT)
    max_duplicate_rate: float = param(1.0, "block above this share of duplicate rows (1.0: never)", range=UNIT)
    drop_duplicates: bool = param(False, "drop exact duplicate rows (and repeated ids)")
    min_clean_rows: int = param(100, "rows needed after cleaning", range=Range(2), was="min_rows")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Check:
    """One quality rule applied to one column (or to the whole frame)."""

    name: str
    column: str | None
    passed: bool
    blocking: bool
    detail: str
    count: int = 0
    rate: float = 0.0

    @property
    def verdict(self) -> str:
        if not self.passed:
            return "FAIL" if self.blocking else "WARN"
        return "WARN" if self.count else "PASS"


@dataclass
class QualityReport:
    """The result of the preparation checks; renders as a table or JSON."""

    rows_in: int
    rows_out: int = 0
    checks: list[Check] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.blocking]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "changes": dict(self.changes),
            "thresholds": asdict(self.thresholds),
            "checks": [asdict(c) | {"verdict": c.verdict} for c in self.checks],
        }

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {"check": c.name, "column": c.column or "", "verdict": c.verdict, "count": c.count,
             "rate": round(c.rate, 4), "detail": c.detail}
            for c in self.checks
        ]
        return pd.DataFrame(rows, columns=["check", "column", "verdict", "count", "rate", "detail"])

    def raise_for_failures(self) -> None:
        """Raise :class:`QualityError` (with this report) when a blocking check failed."""
        if not self.passed:
            raise QualityError(self.summary() + ". Nothing was written; fix the data or the thresholds.",
                               report=self)

    def summary(self) -> str:
        if self.passed:
            return f"quality checks passed: {self.rows_out} of {self.rows_in} rows kept"
        return "quality check failed: " + "; ".join(c.detail for c in self.failures)


def _pct(count: int, total: int) -> float:
    return count / total if total else 0.0


def check_and_clean(raw: pd.DataFrame, thresholds: Thresholds | None = None, *,
                    contract: _contract.Contract | None = None) -> tuple[pd.DataFrame, QualityReport]:
    """Clean ``raw`` and check it against ``contract`` (default the lab's); returns the clean frame and the report.

    The frame returned is only meaningful when ``report.passed``. Rows that
    break a non-blocking rule are dropped and counted in the report.

    Examples
    --------
    >>> from churn_lib.data import generate
    >>> clean, report = check_and_clean(generate(200, seed=1))
    >>> report.passed, len(clean)
    (True, 200)
    """
    t = thresholds or Thresholds()
    c = contract or _contract.lab()
    n = len(raw)
    report = QualityReport(rows_in=n, thresholds=t)
    if not _schema_check(report, raw, c):
        return raw.iloc[0:0], report
    if n == 0:
        report.checks.append(Check("min_rows", None, False, True, "min_rows: the raw data has no rows"))
        return raw.iloc[0:0], report
    check = _contract.check_frame(raw, c, clip=True)
    _missing_checks(report, check.columns, c, n, t)
    _rule_checks(report, check.columns, c, n, t)
    clean = _deduplicate(report, check.clean_frame(~check.bad_rows()), c, t)
    _size_checks(report, clean, c, t)
    report.rows_out = len(clean)
    return clean, report


def _schema_check(report: QualityReport, raw: pd.DataFrame, c: _contract.Contract) -> bool:
    """The ``schema`` check: the header names the contract's columns, no more. True when it passed."""
    missing_cols = [col for col in c.columns if col not in raw.columns]
    extra = [col for col in raw.columns if col not in c.known_columns]
    if missing_cols:
        detail = f"schema: missing required columns {missing_cols}" + (f"; extra columns {extra}" if extra else "")
    elif extra:
        detail = (f"schema: extra columns {extra} are not in the contract {c.name!r}; list them under "
                  "dropped: in dataset.yaml to ignore them")
    else:
        ignored = [d.column for d in c.dropped if d.column in raw.columns]
        detail = "all required columns present" + (f"; dropped columns {ignored}" if ignored else "")
    ok = not (missing_cols or extra)
    report.checks.append(Check("schema", None, ok, True, detail, count=len(missing_cols) + len(extra)))
    return ok


def _missing_checks(report: QualityReport, cols: Mapping[str, Any], c: _contract.Contract, n: int,
                    t: Thresholds) -> None:
    """One ``missing_rate`` check per column, on the raw cells before any conversion."""
    for name in c.columns:
        col = cols[name]
        k = int(col.missing.sum())
        rate = _pct(k, n)
        limit = t.max_missing_rate if col.missing_is_invalid else t.max_imputed_rate
        ok = rate <= limit
        detail = (f"missing_rate on {name}: {k} of {n} rows ({rate:.1%}) are empty; "
                  f"allowed at most {limit:.1%}" + ("" if col.missing_is_invalid else " for a feature the model "
                                                                                       "fills in (max_imputed_rate)"))
        if ok:
            fate = "rows dropped" if col.missing_is_invalid else "kept, filled in by the model"
            detail = f"{k} empty values ({rate:.1%}), {fate}" if k else "no empty values"
        report.checks.append(Check("missing_rate", name, ok, True, detail, count=k, rate=rate))


def _rule_checks(report: QualityReport, cols: Mapping[str, Any], c: _contract.Contract, n: int,
                 t: Thresholds) -> None:
    """The contract's row rules (type, category, range, target, id), in the report's order; the cleaning's changes."""
    def rule(name: str, column: str) -> None:
        col = cols[column]
        _invalid_check(report, name, column, col.violations[name], n, t, col.what[name])

    for f in c.numeric:
        rule(_contract.RULE_TYPE, f.name)
    for col in cols.values():
        report.changes.update(col.changes)
    for f in c.categorical:
        rule(_contract.RULE_CATEGORY, f.name)
    for f in c.numeric:
        if _contract.RULE_RANGE in cols[f.name].violations:
            rule(_contract.RULE_RANGE, f.name)
    rule(_contract.RULE_TARGET, c.target.column)
    for name in c.id:
        rule(_contract.RULE_ID, name)


def _deduplicate(report: QualityReport, clean: pd.DataFrame, c: _contract.Contract, t: Thresholds) -> pd.DataFrame:
    """The ``duplicates`` and ``duplicate_ids`` checks; the rows they drop with ``drop_duplicates``."""
    dup = clean.duplicated().to_numpy()
    k = int(dup.sum())
    rate = _pct(k, len(clean))
    ok = rate <= t.max_duplicate_rate
    fate = "dropped" if t.drop_duplicates else "kept (drop_duplicates=False)"
    report.checks.append(Check(
        "duplicates", None, ok, True,
        (f"{k} duplicate rows ({rate:.1%}), {fate}" if k else "no duplicate rows") if ok else
        f"duplicates: {k} of {len(clean)} rows ({rate:.1%}) are exact copies; "
        f"allowed at most {t.max_duplicate_rate:.1%}", count=k, rate=rate))
    drop = dup.copy()
    if c.id:
        repeated = clean.duplicated(subset=list(c.id)).to_numpy() & ~dup
        k = int(repeated.sum())
        rate = _pct(k, len(clean))
        ok = rate <= t.max_duplicate_rate
        ids = ", ".join(c.id)
        report.checks.append(Check(
            "duplicate_ids", ", ".join(c.id), ok, True,
            (f"{k} rows repeat the id of an earlier row with other values ({rate:.1%}), {fate}" if k
             else f"every {ids} is unique") if ok else
            f"duplicate_ids: {k} of {len(clean)} rows ({rate:.1%}) repeat an earlier row's {ids}; "
            f"allowed at most {t.max_duplicate_rate:.1%}", count=k, rate=rate))
        drop |= repeated
    return (clean[~drop] if t.drop_duplicates else clean).reset_index(drop=True)


def _size_checks(report: QualityReport, clean: pd.DataFrame, c: _contract.Contract, t: Thresholds) -> None:
    """The ``min_rows`` and ``both_classes`` checks: enough clean rows, and two of each class."""
    rows = len(clean)
    report.checks.append(Check(
        "min_rows", None, rows >= t.min_clean_rows, True,
        f"{rows} rows kept" if rows >= t.min_clean_rows else
        f"min_rows: only {rows} clean rows remain; at least {t.min_clean_rows} are needed (min_clean_rows)"))
    counts = clean[c.target.column].value_counts()
    both = all(counts.get(v, 0) >= 2 for v in (0, 1))
    report.checks.append(Check(
        "both_classes", c.target.column, both, True,
        f"class counts {{0: {counts.get(0, 0)}, 1: {counts.get(1, 0)}}}" if both else
        f"both_classes: need at least 2 rows of each class, have "
        f"{{0: {counts.get(0, 0)}, 1: {counts.get(1, 0)}}}"))


def _invalid_check(report: QualityReport, name: str, col: str, mask: np.ndarray, n: int,
                   t: Thresholds, what: str) -> None:
    k = int(mask.sum())
    rate = _pct(k, n)
    ok = rate <= t.max_invalid_rate
    if ok:
        detail = f"{k} rows with {what} ({rate:.1%}), dropped" if k else f"no {what}"
    else:
        detail = (f"{name} on {col}: {k} of {n} rows ({rate:.1%}) have {what}; "
                  f"allowed at most {t.max_invalid_rate:.1%}")
    report.checks.append(Check(name, col, ok, True, detail, count=k, rate=rate))


def train_stats(df: pd.DataFrame, contract: _contract.Contract | None = None) -> dict[str, dict[str, float]]:
    """The lab's ``train_stats.json``: mean and sample std per numeric feature (std 1.0 when 0)."""
    c = contract or _contract.lab()
    stats = {}
    for f in c.numeric:
        values = pd.to_numeric(df[f.name], errors="coerce").astype("float64")
        std = float(values.std(ddof=1)) if values.notna().sum() > 1 else 0.0
        stats[f.name] = {"mean": float(values.mean()), "std": std if std > 0 else 1.0}
    return stats


def prepare(*, home: Home | str | None = None, thresholds: Thresholds | None = None,
            raise_on_failure: bool = True, contract: _contract.Contract | None = None) -> QualityReport:
    """Run the preparation stage on the project's ``data/raw.csv``.

    Parameters
    ----------
    home : Home or path, optional
    thresholds : Thresholds, optional
    raise_on_failure : bool, default=True
        False returns a failed report instead of raising (a notebook shows the
        table first, then calls :meth:`QualityReport.raise_for_failures`).
        Nothing is written either way when a blocking check failed.
    contract : Contract, optional
        Default: the home's.

    Returns
    -------
    QualityReport

    Raises
    ------
    QualityError
        A blocking check failed; nothing was written (``.report`` has the details).
    DataError
        ``data/raw.csv`` is missing or unreadable.
    """
    home = Home.resolve(home)
    contract = contract or _contract.load(home)
    raw = read_csv(home.raw_csv, contract)
    clean, report = check_and_clean(raw, thresholds, contract=contract)
    if not report.passed:
        if raise_on_failure:
            report.raise_for_failures()
        return report
    home.ensure()
    write_csv(clean, home.processed_csv)
    atomic_write_json(home.quality_report_json, report.to_dict())
    atomic_write_json(home.train_stats_json, train_stats(clean, contract))
    log.info("%s", report.summary())
    return report


def load_train_stats(*, home: Home | str | None = None) -> pd.DataFrame:
    """``registry/train_stats.json`` as a table (one row per numeric feature)."""
    home = Home.resolve(home)
    return pd.DataFrame(json.loads(home.train_stats_json.read_text(encoding="utf-8"))).T
