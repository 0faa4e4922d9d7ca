"""CSV reading and writing that follow the contract: only a column's own missing
tokens are missing (the lab's region ``NA`` is North America, never a gap),
ids and categories stay text, and every write is atomic.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .. import contract as _contract
from .._io import atomic_write
from ..exceptions import DataError

log = logging.getLogger(__name__)


def read_options(contract: _contract.Contract | None, columns: Any = None) -> dict[str, Any]:
    """``pandas.read_csv`` keywords for a contract's files: text dtypes and per-column missing tokens.

    Only the empty field is missing unless the contract names other tokens for
    a column; pandas' defaults (``NA``, ``null``, ``nan`` ...) are off.
    """
    contract = contract or _contract.lab()
    columns = set(columns) if columns is not None else None
    na: dict[str, list[str]] = {}
    dtype: dict[str, str] = {}
    for name in contract.id:
        dtype[name] = "str"
        na[name] = [""]
    for f in contract.features:
        tokens = {"", *f.missing}
        if f.type in (_contract.INTEGER, _contract.FLOAT):
            # A blank exported as one space (the telecom data's TotalCharges) is missing anyway, as tokens are
            # compared stripped (churn_lib.contract.frame); naming it lets pandas read the column as numbers
            # (the same floats) instead of text parsed value by value, about 3x faster.
            tokens.add(" ")
        na[f.name] = sorted(tokens)
        if f.type == _contract.CATEGORICAL:
            dtype[f.name] = "str"
    na[contract.target.column] = [""]
    if columns is not None:
        na = {k: v for k, v in na.items() if k in columns}
        dtype = {k: v for k, v in dtype.items() if k in columns}
    return {"keep_default_na": False, "na_values": na, "dtype": dtype}


def read_csv(path: str | Path, contract: _contract.Contract | None = None, *,
             columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a churn CSV of ``contract`` (default the lab's) so that only its missing tokens are missing.

    ``columns``: read only those of the file's columns (the others are never parsed: training skips an id
    column, about 70 bytes a row); a name the file lacks is left out, for the caller to report.

    Raises
    ------
    DataError
        When the file is missing, empty, not UTF-8 or not a readable CSV.
    """
    path = Path(path)
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
        if columns is not None:
            wanted = set(columns)
            header = [c for c in header if c in wanted]
            return pd.read_csv(path, encoding="utf-8-sig", usecols=header, **read_options(contract, header))
        return pd.read_csv(path, encoding="utf-8-sig", **read_options(contract, header))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: run the previous stage first", path=str(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header line naming the columns", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                        f"{exc.start} of a block); save it as UTF-8", path=str(path)) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}", path=str(path)) from None


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically, no index, missing values as empty fields."""
    path = Path(path)
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, na_rep=""))
    return path
