"""Synthetic churn data: generation (bit-compatible with the lab), fault
injection for the quality stage, and CSV reading/writing that keeps the region
``NA`` (North America) as ``NA`` instead of "missing".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema
from ._files import atomic_write
from .exceptions import DataError, InvalidParameter
from .home import Home

log = logging.getLogger(__name__)

_PLANS = ("basic", "premium")
_PLAN_P = (0.72, 0.28)
_REGIONS = ("NA", "EU", "AF", "AS")
_REGION_P = (0.25, 0.30, 0.25, 0.20)

#: Only the empty field is missing: ``NA`` is a region, not a gap.
_NA_VALUES = [""]


@dataclass(frozen=True)
class Faults:
    """Rates (0..1, share of rows) of realistic faults to inject after generation.

    ``missing`` applies to every feature column; ``missing_columns`` overrides
    it per column. Faults use their own random stream, so the clean draws (and
    the lab's file on the defaults) do not change.
    """

    missing: float = 0.0
    missing_columns: dict[str, float] = field(default_factory=dict)
    negative_session: float = 0.0
    category_variants: float = 0.0
    unknown_categories: float = 0.0
    duplicates: float = 0.0
    out_of_range: float = 0.0
    bad_target: float = 0.0

    def __post_init__(self) -> None:
        rates = {k: v for k, v in asdict(self).items() if k != "missing_columns"}
        rates.update({f"missing_columns.{k}": v for k, v in self.missing_columns.items()})
        for name, rate in rates.items():
            if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
                raise InvalidParameter(
                    f"fault rate {name}={rate!r} must be a number between 0 and 1", name=name
                )
        unknown = set(self.missing_columns) - set(schema.COLUMNS)
        if unknown:
            raise InvalidParameter(
                f"missing_columns names unknown columns {sorted(unknown)}; "
                f"allowed: {', '.join(schema.COLUMNS)}",
                name="missing_columns",
            )

    @property
    def any(self) -> bool:
        return any(asdict(self).values())


def generate(n_rows: int = 1200, *, seed: int = 42, faults: Faults | None = None) -> pd.DataFrame:
    """Draw a synthetic churn data set, in the lab's draw order.

    Parameters
    ----------
    n_rows : int, default=1200
    seed : int, default=42
        Seeds a local ``numpy.random.default_rng``; nothing global is touched.
    faults : Faults, optional
        Faults to inject (own random stream); None for clean data.

    Returns
    -------
    pandas.DataFrame
        Columns ``schema.COLUMNS`` in order. Categories are ``pd.Categorical``
        when clean (memory in proportion to rows, 10 million rows fit easily).

    Examples
    --------
    >>> generate(5, seed=1).shape
    (5, 6)
    """
    if not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise InvalidParameter(f"n_rows must be a positive integer, got {n_rows!r}", name="n_rows")
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 60, size=n_rows)
    complaints = rng.poisson(1.2, size=n_rows)
    session = np.clip(rng.normal(35, 12, size=n_rows), 1, 120)
    # choice over indices draws exactly as choice over the labels, without
    # materialising an array of strings per row.
    plan = rng.choice(len(_PLANS), size=n_rows, p=_PLAN_P)
    region = rng.choice(len(_REGIONS), size=n_rows, p=_REGION_P)
    logit = (
        1.2
        + 0.55 * complaints
        - 0.03 * tenure
        - 0.02 * session
        - 0.35 * (plan == 1)
        - 0.05 * (region == 1)
        + 0.08 * (region == 2)
    )
    churn = rng.binomial(1, 1.0 / (1.0 + np.exp(-logit)))
    df = pd.DataFrame(
        {
            "tenure_months": tenure,
            "num_complaints": complaints,
            "avg_session_minutes": np.round(session, 2),
            "plan_type": pd.Categorical.from_codes(plan, categories=list(_PLANS)),
            "region": pd.Categorical.from_codes(region, categories=list(_REGIONS)),
            "churn": churn,
        }
    )
    if faults is not None and faults.any:
        df = inject_faults(df, faults, seed=seed)
    return df


def inject_faults(df: pd.DataFrame, faults: Faults, *, seed: int) -> pd.DataFrame:
    """Return a copy of ``df`` with ``faults`` injected (seeded by ``seed``)."""
    rng = np.random.default_rng([seed, 0xFA017])
    n = len(df)
    out = df.copy()
    for col in schema.CATEGORICAL:
        out[col] = out[col].astype(object)

    def rows(rate: float) -> np.ndarray:
        k = int(round(rate * n))
        return rng.choice(n, size=k, replace=False) if k else np.empty(0, dtype=int)

    if faults.duplicates:
        idx = rows(faults.duplicates)
        src = rng.integers(0, n, size=len(idx))
        out.iloc[idx] = out.iloc[src].to_numpy()
    if faults.negative_session:
        idx = rows(faults.negative_session)
        out.loc[idx, "avg_session_minutes"] = -np.round(rng.uniform(0.5, 30, size=len(idx)), 2)
    if faults.category_variants:
        idx = rows(faults.category_variants)
        for i in idx:
            col = "plan_type" if rng.random() < 0.5 else "region"
            value = str(out.at[i, col])
            variants = [v for v in (value.upper(), value.lower(), f" {value}", f"{value} ", value.title())
                        if v != value]
            out.at[i, col] = variants[rng.integers(len(variants))]
    if faults.unknown_categories:
        idx = rows(faults.unknown_categories)
        for i in idx:
            if rng.random() < 0.5:
                out.at[i, "plan_type"] = ("gold", "enterprise")[rng.integers(2)]
            else:
                out.at[i, "region"] = ("LATAM", "OC")[rng.integers(2)]
    if faults.out_of_range:
        idx = rows(faults.out_of_range)
        out["tenure_months"] = out["tenure_months"].astype("int64")
        for i in idx:
            col = schema.NUMERIC[rng.integers(len(schema.NUMERIC))]
            hi = schema.RANGES[col].high
            out.at[i, col] = int(hi * 5) if col in schema.INTEGER else float(hi * 5)
    if faults.bad_target:
        idx = rows(faults.bad_target)
        out.loc[idx, "churn"] = rng.choice([2, -1], size=len(idx))
    for col in schema.COLUMNS:
        rate = faults.missing_columns.get(col, faults.missing if col != schema.TARGET else 0.0)
        if rate:
            idx = rows(rate)
            if col in schema.INTEGER or col == schema.TARGET:
                out[col] = out[col].astype("Int64")  # ints stay ints when written
            out.loc[idx, col] = None
    return out


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a churn CSV so that only an empty field is missing (``NA`` stays a region).

    Raises
    ------
    DataError
        When the file is missing or not a readable CSV.
    """
    path = Path(path)
    try:
        return pd.read_csv(
            path,
            keep_default_na=False,
            na_values=_NA_VALUES,
            dtype={c: "str" for c in schema.CATEGORICAL},
        )
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: run the previous stage first", path=str(path)) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}", path=str(path)) from None


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically, no index, missing values as empty fields."""
    path = Path(path)
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, na_rep=""))
    return path


def write_raw(df: pd.DataFrame, *, home: Home | str | None = None) -> Path:
    """Write ``df`` as the project's ``data/raw.csv`` (only generation does this)."""
    home = Home.resolve(home).ensure()
    path = write_csv(df, home.raw_csv)
    log.info("wrote %d rows to %s", len(df), path)
    return path


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per column: type, missing count, distinct values, and min / mean / max of numbers."""
    rows = []
    for col in df.columns:
        s = df[col]
        num = pd.to_numeric(s, errors="coerce") if col in (*schema.NUMERIC, schema.TARGET) else None
        rows.append({
            "column": col, "dtype": str(s.dtype), "missing": int(s.isna().sum()), "distinct": int(s.nunique()),
            "min": float(num.min()) if num is not None else None,
            "mean": float(num.mean()) if num is not None else None,
            "max": float(num.max()) if num is not None else None,
        })
    return pd.DataFrame(rows).set_index("column")


def churn_rates(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows and churn rate per value of ``by`` (a categorical column)."""
    target = pd.to_numeric(df[schema.TARGET], errors="coerce")
    out = target.groupby(df[by].astype(str), observed=True).agg(["size", "mean"])
    return out.rename(columns={"size": "rows", "mean": "churn_rate"}).sort_index()
