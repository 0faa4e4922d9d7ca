"""Stage 01, data: the contract's source becomes ``data/raw.csv``.

* :mod:`.lab` - the lab's generator (byte-identical to the lab on its defaults) and fault injection;
* :mod:`.ingest` - a file source (CSV or Parquet file or glob), copied or converted and checked;
* :mod:`.dialect` - a CSV's separator and decimal mark: sniffed, and a header split otherwise refused;
* :mod:`.parquet` - Parquet files through DuckDB: their columns' types, the refusals, the lab's CSV;
* :mod:`.csv` - CSV reading and writing that follow the contract (``NA`` stays a value);
* here - :func:`make_raw` (the stage), and the data overview a reviewer reads (:func:`summary`,
  :func:`target_rates`).

Only this stage writes ``data/raw.csv``; a ``raw.csv.sha256`` beside it
(``sha256sum -c`` format) records what was written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import contract as _contract
from .._io import atomic_write_text, sha256_file
from .._params import Range, check_fields, param
from ..exceptions import InvalidParameter
from ..home import Home
from .csv import read_csv, write_csv
from .ingest import ingest
from .lab import Faults, generate, inject_faults

__all__ = ["DataParams", "Faults", "RawData", "churn_rates", "generate", "inject_faults", "make_raw", "read_csv",
           "summary", "target_rates", "write_csv", "write_raw"]

log = logging.getLogger(__name__)

#: Rows the lab's generator draws when ``n_rows`` is not given (the lab's default).
LAB_ROWS = 1200


@dataclass(frozen=True)
class DataParams:
    """Parameters of stage 01 (notebook parameters and CLI flags share these names)."""

    n_rows: int | None = param(None, "rows: drawn by the lab generator (None: 1200), or a random sample of a file "
                                     "source (None: every row)", range=Range(1))
    seed: int = param(42, "seed of the local random generator (and of training)", range=Range(0))
    source: str | None = param(None, "a CSV file or glob to read instead of the contract's source (None: the "
                                     "contract's)")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.source is not None and (not isinstance(self.source, str) or not self.source.strip()):
            raise InvalidParameter(f"source must be a file name or glob, got {self.source!r}", name="source")


@dataclass
class RawData:
    """What stage 01 wrote: ``data/raw.csv``, its rows and sha256, and where the rows came from."""

    path: Path
    rows: int
    sha256: str
    source: str
    contract: _contract.Contract = field(repr=False)
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    def frame(self) -> pd.DataFrame:
        """The rows as a frame (read back from the file for a file source)."""
        if self._frame is None:
            self._frame = read_csv(self.path, self.contract)
        return self._frame

    def summary(self) -> str:
        return f"wrote {self.rows:,} rows from {self.source} to {self.path} (sha256 {self.sha256[:12]}...)"


def check_params(contract: _contract.Contract, params: DataParams, faults: Faults) -> None:
    """Refuse parameters that do not apply to the contract's source (before any kernel starts)."""
    if (params.source is not None or not contract.source.is_generator) and faults.any:
        raise InvalidParameter("fault injection applies to the lab generator only; this run reads a file "
                               "(its faults are its own)", name="faults")


def make_raw(*, home: Home | str | None = None, contract: _contract.Contract | None = None,
             params: DataParams | None = None, faults: Faults | None = None) -> RawData:
    """Stage 01: draw the lab's data or copy the file source to ``data/raw.csv``.

    Parameters
    ----------
    home : Home or path, optional
    contract : Contract, optional
        Default: the home's (``dataset.yaml``, else the lab's).
    params : DataParams, optional
    faults : Faults, optional
        Injected into generated data only.

    Returns
    -------
    RawData

    Raises
    ------
    DataError
        The file source is missing, not UTF-8, empty, or its header differs from the contract.
    InvalidParameter
        Faults for a file source, more rows asked than the file has.
    """
    home = Home.resolve(home).ensure()
    contract = contract or _contract.load(home)
    params = params or DataParams()
    faults = faults or Faults()
    check_params(contract, params, faults)
    if params.source is None and contract.source.is_generator:
        df = generate(params.n_rows or LAB_ROWS, seed=params.seed, faults=faults)
        path = write_raw(df, home=home)
        return RawData(path, len(df), sha256_file(path), contract.source.describe(), contract, df)
    info = ingest(contract, root=home.root, target=home.raw_csv, source=params.source, n_rows=params.n_rows,
                  seed=params.seed)
    digest = _write_digest(home.raw_csv)
    where = info.files[0] if len(info.files) == 1 else f"{len(info.files)} files ({params.source or contract.source.path})"
    return RawData(home.raw_csv, info.rows, digest, where, contract)


def write_raw(df: pd.DataFrame, *, home: Home | str | None = None) -> Path:
    """Write ``df`` as the project's ``data/raw.csv`` (only stage 01 does this), with its sha256 beside it."""
    home = Home.resolve(home).ensure()
    path = write_csv(df, home.raw_csv)
    _write_digest(path)
    log.info("wrote %d rows to %s", len(df), path)
    return path


def _write_digest(path: Path) -> str:
    digest = sha256_file(path)
    atomic_write_text(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


# --- the data overview ----------------------------------------------------------------

def target01(df: pd.DataFrame, contract: _contract.Contract | None = None) -> pd.Series:
    """The target of ``df`` as 1.0 (churned) / 0.0 (stayed) / NaN, whatever its labels."""
    return pd.Series(_target01(df, contract or _contract.lab()), index=df.index)


def _target01(df: pd.DataFrame, contract: _contract.Contract) -> np.ndarray:
    """The target as 1.0 / 0.0 (NaN for anything else), whatever its labels."""
    col = _contract.check_frame(df[[contract.target.column]], contract, ids=False, features=()).columns
    labels = col[contract.target.column].values.astype(float)
    labels[labels < 0] = np.nan
    return labels


def summary(df: pd.DataFrame, contract: _contract.Contract | None = None) -> pd.DataFrame:
    """Per column: role, contract type, dtype, missing count, distinct values, and min / mean / max of numbers.

    The target's mean is the churn rate (its labels mapped to 1 / 0).
    """
    contract = contract or _contract.lab()
    roles = {**{c: "id" for c in contract.id}, **{f.name: f.type for f in contract.features},
             contract.target.column: "target", **{d.column: "dropped" for d in contract.dropped}}
    rows = []
    for col in df.columns:
        s = df[col]
        kind = roles.get(col, "extra")
        num = None
        if kind == "target":
            num = pd.Series(_target01(df, contract))
        elif kind in _contract.NUMERIC_TYPES and kind != _contract.BOOLEAN:
            num = pd.to_numeric(s, errors="coerce")
        rows.append({
            "column": col, "role": kind, "dtype": str(s.dtype), "missing": int(s.isna().sum()),
            "distinct": int(s.nunique()),
            "min": float(num.min()) if num is not None else None,
            "mean": float(num.mean()) if num is not None else None,
            "max": float(num.max()) if num is not None else None,
        })
    return pd.DataFrame(rows).set_index("column")


def target_rates(df: pd.DataFrame, by: str, contract: _contract.Contract | None = None, *,
                 target: pd.Series | None = None) -> pd.DataFrame:
    """Rows and churn rate per value of ``by`` (a categorical or boolean column).

    ``target``: the target as 1.0 / 0.0 when already mapped (several columns of one frame).
    """
    contract = contract or _contract.lab()
    if target is None:
        target = pd.Series(_target01(df, contract), index=df.index)
    out = target.groupby(df[by], observed=True, dropna=False).agg(["size", "mean"])  # grouped in C
    out.index = ["(missing)" if pd.isna(v) else str(v) for v in out.index]
    return out.rename(columns={"size": "rows", "mean": "churn_rate"}).sort_index()


def churn_rates(df: pd.DataFrame, contract: _contract.Contract | None = None, *,
                columns: list[str] | None = None, max_columns: int = 12) -> dict[str, pd.DataFrame]:
    """:func:`target_rates` of each categorical or boolean feature (the first ``max_columns``), or of ``columns``.

    What :func:`churn_lib.plots.churn_rate_by` draws; the target is mapped once for every column.
    """
    contract = contract or _contract.lab()
    if columns is None:
        columns = [f.name for f in contract.features if not f.is_numeric or f.type == _contract.BOOLEAN][:max_columns]
    target = pd.Series(_target01(df, contract), index=df.index) if columns else None
    return {col: target_rates(df, col, contract, target=target) for col in columns}
