"""The lab's synthetic churn data: generation (bit-compatible with the lab) and
fault injection for the quality stage.

This module and :func:`churn_lib.contract.lab` are the only places that know
the lab's five columns: the generator draws them in the lab's order, and the
faults break them the way real exports break.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .. import contract as _contract
from .._params import UNIT, Param, check_fields, param
from ..exceptions import InvalidParameter

_PLANS = ("basic", "premium")
_PLAN_P = (0.72, 0.28)
_REGIONS = ("NA", "EU", "AF", "AS")
_REGION_P = (0.25, 0.30, 0.25, 0.20)


def _rate(help: str) -> object:
    return param(0.0, help, range=UNIT)


@dataclass(frozen=True)
class Faults:
    """Rates (0..1, share of rows) of realistic faults to inject into the lab's generated data.

    ``missing`` applies to every feature column; ``missing_columns`` overrides
    it per column. Faults use their own random stream, so the clean draws (and
    the lab's file on the defaults) do not change. They apply to the lab's
    generator only: a file source has the faults it has.
    """

    missing: float = _rate("share of rows with an empty value, per feature")
    negative_session: float = _rate("share of rows with a negative session time")
    category_variants: float = _rate("share of rows with a category in other case or with spaces")
    unknown_categories: float = _rate("share of rows with a category outside the contract")
    duplicates: float = _rate("share of rows replaced by copies of others")
    out_of_range: float = _rate("share of rows with a number far outside its valid range")
    bad_target: float = _rate("share of rows with a churn value other than 0 or 1")
    missing_columns: dict[str, float] = field(default_factory=dict, metadata={"stage": False})

    def __post_init__(self) -> None:
        check_fields(self)
        for column, rate in self.missing_columns.items():
            Param(f"missing_columns.{column}", 0.0, "", float, range=UNIT).check(rate)
        columns = _contract.lab().columns
        unknown = set(self.missing_columns) - set(columns)
        if unknown:
            raise InvalidParameter(
                f"missing_columns names unknown columns {sorted(unknown)}; "
                f"allowed: {', '.join(columns)}",
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
        The lab contract's columns in order. Categories are ``pd.Categorical``
        when clean (memory in proportion to rows, 10 million rows fit easily).

    Examples
    --------
    >>> generate(5, seed=1).shape
    (5, 6)
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
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
    lab = _contract.lab()
    numeric = [f for f in lab.features if f.type != _contract.CATEGORICAL]
    target = lab.target.column
    rng = np.random.default_rng([seed, 0xFA017])
    n = len(df)
    out = df.copy()
    for f in lab.categorical:
        out[f.name] = out[f.name].astype(object)

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
            f = numeric[rng.integers(len(numeric))]
            out.at[i, f.name] = int(f.high * 5) if f.type == _contract.INTEGER else float(f.high * 5)
    if faults.bad_target:
        idx = rows(faults.bad_target)
        out.loc[idx, target] = rng.choice([2, -1], size=len(idx))
    for col in lab.columns:
        rate = faults.missing_columns.get(col, faults.missing if col != target else 0.0)
        if rate:
            idx = rows(rate)
            f = next((f for f in lab.features if f.name == col), None)
            if col == target or (f is not None and f.type == _contract.INTEGER):
                out[col] = out[col].astype("Int64")  # ints stay ints when written
            out.loc[idx, col] = None
    return out
