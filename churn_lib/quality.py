"""Preparation: the lab's cleaning plus data quality checks.

:func:`check_and_clean` turns a raw frame into a clean one and a
:class:`QualityReport` (every check with its verdict and detail).
:func:`prepare` is the stage: read ``data/raw.csv``, check, and only when no
blocking check failed write ``data/processed.csv``, ``data/quality_report.json``
and the lab's ``registry/train_stats.json``.

Rules (thresholds in :class:`Thresholds`):

* ``schema``: every column of the schema is present (blocking).
* ``missing_rate``: per column, counted on the raw values before any
  conversion; above ``max_missing_rate`` blocks, below it the rows are dropped.
* ``numeric_type``, ``range``, ``allowed_categories``, ``target_values``: rows
  that break them are dropped when they are at most ``max_invalid_rate`` of the
  rows of that column, else the stage stops.
* ``duplicates``: exact duplicate rows are counted and reported. They are kept
  by default: the data has no customer key, and exact repeats arise by chance
  at scale (0 % of 1,200 default rows, 4.5 % of 1 million, 31 % of 10 million).
  ``drop_duplicates=True`` drops them; ``max_duplicate_rate`` below 1 blocks.
* ``min_rows`` / ``both_classes``: enough rows of each class remain (blocking).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import schema
from ._files import atomic_write_json
from .data import read_csv, write_csv
from .exceptions import InvalidParameter, QualityError
from .home import Home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Quality thresholds (rates are shares of rows, 0..1)."""

    max_missing_rate: float = 0.05
    max_invalid_rate: float = 0.01
    max_duplicate_rate: float = 1.0
    drop_duplicates: bool = False
    min_rows: int = 100

    def __post_init__(self) -> None:
        for name in ("max_missing_rate", "max_invalid_rate", "max_duplicate_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidParameter(f"{name} must be between 0 and 1, got {value!r}", name=name)
        if not isinstance(self.min_rows, int) or self.min_rows < 2:
            raise InvalidParameter(f"min_rows must be an integer >= 2, got {self.min_rows!r}", name="min_rows")


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


def check_and_clean(raw: pd.DataFrame, thresholds: Thresholds | None = None) -> tuple[pd.DataFrame, QualityReport]:
    """Clean ``raw`` and check it; returns the clean frame and the report.

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
    n = len(raw)
    report = QualityReport(rows_in=n, thresholds=t)
    add = report.checks.append

    missing_cols = [c for c in schema.COLUMNS if c not in raw.columns]
    extra = [c for c in raw.columns if c not in schema.COLUMNS]
    add(Check("schema", None, not missing_cols, True,
              f"schema: missing required columns {missing_cols}" if missing_cols
              else "all required columns present" + (f"; ignored extra columns {extra}" if extra else ""),
              count=len(missing_cols)))
    if missing_cols:
        return raw.iloc[0:0], report
    if n == 0:
        add(Check("min_rows", None, False, True, "min_rows: the raw data has no rows"))
        return raw.iloc[0:0], report

    df = raw.loc[:, list(schema.COLUMNS)]
    bad = np.zeros(n, dtype=bool)  # rows to drop

    # Missing values, on the raw cells before any conversion.
    for col in schema.COLUMNS:
        isna = df[col].isna().to_numpy()
        k = int(isna.sum())
        rate = _pct(k, n)
        ok = rate <= t.max_missing_rate
        detail = (f"missing_rate on {col}: {k} of {n} rows ({rate:.1%}) are empty; "
                  f"allowed at most {t.max_missing_rate:.1%}")
        if ok:
            detail = f"{k} empty values ({rate:.1%}), rows dropped" if k else "no empty values"
        add(Check("missing_rate", col, ok, True, detail, count=k, rate=rate))
        bad |= isna

    # Numeric types: parseable numbers; integer columns hold whole numbers.
    numeric: dict[str, pd.Series] = {}
    for col in (*schema.NUMERIC, schema.TARGET):
        values = pd.to_numeric(df[col], errors="coerce")
        unparsed = values.isna().to_numpy() & df[col].notna().to_numpy()
        if col in schema.INTEGER or col == schema.TARGET:
            v = values.to_numpy(dtype=float, na_value=np.nan)
            unparsed |= np.isfinite(v) & (v != np.round(v))
            unparsed |= np.isinf(v)
        elif values.notna().any():
            unparsed |= np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        numeric[col] = values
        _invalid_check(report, "numeric_type", col, unparsed, n, t,
                       "values that are not " + ("whole numbers" if col in schema.INTEGER or col == schema.TARGET
                                                 else "numbers"))
        bad |= unparsed

    # The lab's cleaning: sessions clipped below at 0; categories normalised.
    session = numeric["avg_session_minutes"]
    negative = int((session < 0).sum())
    numeric["avg_session_minutes"] = session.clip(lower=0)
    report.changes["avg_session_minutes clipped to 0"] = negative
    cats: dict[str, pd.Series] = {}
    for col in schema.CATEGORICAL:
        codes, uniques = pd.factorize(df[col], use_na_sentinel=True)
        raw_u = [str(u) for u in uniques]
        norm_u = [schema.normalise_category(col, u) for u in raw_u]
        changed_u = np.array([a != b for a, b in zip(raw_u, norm_u)] + [False])
        report.changes[f"{col} normalised"] = int(changed_u[codes].sum()) if len(raw_u) else 0
        allowed_u = np.array([u in schema.CATEGORIES[col] for u in norm_u] + [True])
        unknown = ~allowed_u[codes]
        cats[col] = pd.Series(np.array(norm_u + [""], dtype=object)[codes], index=df.index)
        seen = sorted({norm_u[i] for i in np.unique(codes[unknown])})
        _invalid_check(report, "allowed_categories", col, unknown, n, t,
                       f"values outside {list(schema.CATEGORIES[col])}" + (f" (seen: {seen[:5]})" if seen else ""))
        bad |= unknown

    for col in schema.NUMERIC:
        rng = schema.RANGES[col]
        v = numeric[col]
        out = ((v < rng.low) | (v > rng.high)).to_numpy(dtype=bool, na_value=False)
        _invalid_check(report, "range", col, out, n, t, f"values outside [{rng.low:g}, {rng.high:g}]")
        bad |= out

    target = numeric[schema.TARGET]
    wrong = (~target.isin(schema.TARGET_VALUES) & target.notna()).to_numpy()
    _invalid_check(report, "target_values", schema.TARGET, wrong, n, t,
                   f"values outside {list(schema.TARGET_VALUES)}")
    bad |= wrong

    keep = ~bad
    clean = pd.DataFrame(
        {
            "tenure_months": numeric["tenure_months"][keep].astype("int64"),
            "num_complaints": numeric["num_complaints"][keep].astype("int64"),
            "avg_session_minutes": numeric["avg_session_minutes"][keep].astype("float64"),
            "plan_type": cats["plan_type"][keep].astype("str"),
            "region": cats["region"][keep].astype("str"),
            "churn": target[keep].astype("int64"),
        }
    )
    dup = clean.duplicated().to_numpy()
    k = int(dup.sum())
    rate = _pct(k, len(clean))
    ok = rate <= t.max_duplicate_rate
    fate = "dropped" if t.drop_duplicates else "kept (drop_duplicates=False)"
    add(Check("duplicates", None, ok, True,
              (f"{k} duplicate rows ({rate:.1%}), {fate}" if k else "no duplicate rows") if ok else
              f"duplicates: {k} of {len(clean)} rows ({rate:.1%}) are exact copies; "
              f"allowed at most {t.max_duplicate_rate:.1%}", count=k, rate=rate))
    clean = (clean[~dup] if t.drop_duplicates else clean).reset_index(drop=True)

    rows = len(clean)
    add(Check("min_rows", None, rows >= t.min_rows, True,
              f"{rows} rows kept" if rows >= t.min_rows else
              f"min_rows: only {rows} clean rows remain; at least {t.min_rows} are needed"))
    counts = clean[schema.TARGET].value_counts()
    both = all(counts.get(v, 0) >= 2 for v in schema.TARGET_VALUES)
    add(Check("both_classes", schema.TARGET, both, True,
              f"class counts {{0: {counts.get(0, 0)}, 1: {counts.get(1, 0)}}}" if both else
              f"both_classes: need at least 2 rows of each class, have "
              f"{{0: {counts.get(0, 0)}, 1: {counts.get(1, 0)}}}"))
    report.rows_out = rows
    return clean, report


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


def train_stats(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The lab's ``train_stats.json``: mean and sample std per numeric feature (std 1.0 when 0)."""
    stats = {}
    for col in schema.NUMERIC:
        std = float(df[col].std(ddof=1)) if len(df) > 1 else 0.0
        stats[col] = {"mean": float(df[col].mean()), "std": std if std > 0 else 1.0}
    return stats


def prepare(*, home: Home | str | None = None, thresholds: Thresholds | None = None,
            raise_on_failure: bool = True) -> QualityReport:
    """Run the preparation stage on the project's ``data/raw.csv``.

    Parameters
    ----------
    raise_on_failure : bool, default=True
        False returns a failed report instead of raising (a notebook shows the
        table first, then calls :meth:`QualityReport.raise_for_failures`).
        Nothing is written either way when a blocking check failed.

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
    raw = read_csv(home.raw_csv)
    clean, report = check_and_clean(raw, thresholds)
    if not report.passed:
        if raise_on_failure:
            report.raise_for_failures()
        return report
    home.ensure()
    write_csv(clean, home.processed_csv)
    atomic_write_json(home.quality_report_json, report.to_dict())
    atomic_write_json(home.train_stats_json, train_stats(clean))
    log.info("%s", report.summary())
    return report


def load_train_stats(*, home: Home | str | None = None) -> pd.DataFrame:
    """``registry/train_stats.json`` as a table (one row per numeric feature)."""
    home = Home.resolve(home)
    return pd.DataFrame(json.loads(home.train_stats_json.read_text(encoding="utf-8"))).T
