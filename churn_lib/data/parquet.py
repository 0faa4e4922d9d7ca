"""Parquet files as the project reads them, through DuckDB: which files are Parquet, their columns and
how each column's type maps onto the contract's, and the one-line refusals.

Parquet types map as follows (:func:`kind`): integers of any width to
``integer``, floats, doubles and decimals to ``float``, booleans to
``boolean``, strings (dictionary-encoded categoricals included), enums and
UUIDs to ``text`` (which ``churn init`` profiles like a CSV column: a
categorical, a boolean spelled in words, a number stored as text ...), dates,
times, timestamps and intervals to ``datetime`` (``churn init`` drops such a
column with the reason; stage 01 writes it as ISO text). Nested and binary
columns (list, struct, map, union, blob, bit) have no place in a churn table:
a file with one is refused, naming the file and the column, as is a
truncated or damaged file and a target column that is not a label (text,
integer or boolean).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import _duck
from .. import contract as _contract
from ..exceptions import DataError

#: The first (and last) bytes of every Parquet file.
MAGIC = b"PAR1"
#: DuckDB's memory while reading or converting Parquet (it streams row groups; beyond, it spills or fails).
MEMORY_LIMIT = "512MB"
#: The kinds of Parquet columns a target may have (a label, not a measurement).
TARGET_KINDS = ("text", "integer", "boolean")

_INTEGER = re.compile(r"^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$")
_FLOAT = re.compile(r"^(FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\))$")
_TEXT = re.compile(r"^(VARCHAR|UUID|ENUM\(.*\))$", re.DOTALL)
_DATETIME = re.compile(r"^(DATE|TIME|TIMESTAMP.*|TIME WITH TIME ZONE|INTERVAL)$")


@dataclass(frozen=True)
class Column:
    """A column of a Parquet file: its name, DuckDB's type for it, and its :func:`kind`."""

    name: str
    type: str
    kind: str | None


def kind(duck_type: str) -> str | None:
    """The kind of a column of DuckDB type ``duck_type``: integer, float, boolean, text, datetime or None
    (nested or binary: not supported).

    Examples
    --------
    >>> [kind(t) for t in ("BIGINT", "DECIMAL(10,2)", "BOOLEAN", "VARCHAR", "TIMESTAMP WITH TIME ZONE",
    ...                    "INTEGER[]", "STRUCT(a INTEGER)", "BLOB")]
    ['integer', 'float', 'boolean', 'text', 'datetime', None, None, None]
    """
    t = duck_type.strip().upper()
    if _INTEGER.match(t):
        return "integer"
    if _FLOAT.match(t):
        return "float"
    if t == "BOOLEAN":
        return "boolean"
    if _TEXT.match(t):
        return "text"
    if _DATETIME.match(t):
        return "datetime"
    return None


def is_parquet(path: str | Path) -> bool:
    """True for a file named like Parquet (``.parquet``, ``.parq``, ``.pq``) or starting with its magic bytes."""
    if _contract.is_parquet_name(str(path)):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def error(path: str | Path, exc: Exception, *, column: str | None = None) -> DataError:
    """A DuckDB error reading ``path`` as one line naming the file (and the column when known)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    where = f", column {column!r}" if column else ""
    return DataError(f"{path}{where} is not a readable Parquet file (truncated or damaged?): {text}",
                     path=str(path), column=column)


def columns(con: Any, path: Path) -> tuple[Column, ...]:
    """The columns of a Parquet file, from its footer (no data read).

    Raises
    ------
    DataError
        Not a Parquet file, truncated (no footer), or a nested or binary column (named).
    """
    import duckdb

    try:
        found = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(path)}).fetchall()
    except duckdb.Error as exc:
        raise error(path, exc) from None
    out = tuple(Column(str(name), str(kind_), kind(str(kind_))) for name, kind_, *_ in found)
    for col in out:
        if col.kind is None:
            raise DataError(f"{path}: column {col.name!r} has the Parquet type {col.type}, which churn-mlops does "
                            "not read (nested or binary); leave it out of the export or list it in no role",
                            path=str(path), column=col.name)
    return out


def check_target(path: Path, cols: Sequence[Column], target: str) -> None:
    """Refuse a target column that is not a label (text, integer or boolean), naming the file and the column."""
    for col in cols:
        if col.name == target and col.kind not in TARGET_KINDS:
            raise DataError(f"{path}: the target column {target!r} has the Parquet type {col.type}; a churn target "
                            "is a label (text such as Yes/No, an integer 1/0, or a boolean)", path=str(path),
                            column=target)


def locate_damage(con: Any, path: Path, cols: Sequence[Column], exc: Exception) -> DataError:
    """After a failed read of ``path``: the first column whose data cannot be read, named (or the file alone)."""
    import duckdb

    for col in cols:
        try:
            con.execute(f"SELECT max(length(CAST({_duck.ident(col.name)} AS VARCHAR))) FROM read_parquet($path)",
                        {"path": str(path)}).fetchall()
        except duckdb.Error as col_exc:
            return error(path, col_exc, column=col.name)
    return error(path, exc)


def schema(con: Any, files: Sequence[Path]) -> tuple[Column, ...]:
    """The columns of the first file, once every file is checked to have the same names in the same order.

    Raises
    ------
    DataError
        A file cannot be read, has a nested or binary column, or has other columns than the first.
    """
    first = columns(con, files[0])
    for path in files[1:]:
        cols = columns(con, path)
        if [c.name for c in cols] != [c.name for c in first]:
            raise DataError(f"{path} has other columns than {files[0]}: every file of a source needs the same "
                            "columns in the same order", path=str(path))
    return first


def read_schema(files: Sequence[Path]) -> tuple[Column, ...]:
    """:func:`schema` on a connection of its own (the footers only: cheap)."""
    con = _duck.connect(MEMORY_LIMIT)
    try:
        return schema(con, files)
    finally:
        con.close()


def to_lab_csv(files: Sequence[Path], target: Path, *, target_column: str) -> tuple[tuple[str, ...], int]:
    """Write the rows of Parquet ``files`` (in name order, each in its row order) to the CSV ``target`` in the
    lab's dialect; return the columns and the rows written.

    Numbers are written as DuckDB spells them (``12.5``, ``1e-07``), booleans as
    ``true``/``false``, dates and times in ISO form, a missing value as the empty
    field. ``target`` is written directly: the caller renames it into place.

    Raises
    ------
    DataError
        See :func:`schema` and :func:`check_target`; a damaged column chunk (named).
    """
    import duckdb

    con = _duck.connect(MEMORY_LIMIT, ordered=True)  # rows keep the files' order
    try:
        cols = schema(con, files)
        check_target(files[0], cols, target_column)
        try:
            rows = con.execute(f"COPY (SELECT * FROM read_parquet($files)) TO '{sql_path(target)}' "
                               "(FORMAT csv, HEADER true, DELIMITER ',')", {"files": [str(p) for p in files]}
                               ).fetchone()[0]
        except duckdb.Error as exc:
            raise _damaged(con, files, cols, exc) from None
    finally:
        con.close()
    return tuple(c.name for c in cols), int(rows)


def _damaged(con: Any, files: Sequence[Path], cols: Sequence[Column], exc: Exception) -> DataError:
    """Which file (and column) a failed read of several files came from."""
    if "write" in str(exc).lower() or "space" in str(exc).lower():  # the target's disk, not the source
        return DataError(f"cannot write the rows of {files[0]} as CSV: {str(exc).splitlines()[0]}",
                         path=str(files[0]))
    for path in files:
        found = locate_damage(con, path, cols, exc)
        if found.column is not None:
            return found
    return error(files[0] if len(files) == 1 else f"one of {len(files)} files ({files[0]} ...)", exc)


def sql_path(path: Path) -> str:
    """A path as a SQL string literal's content (COPY ... TO takes no parameter)."""
    return str(path).replace("'", "''")
