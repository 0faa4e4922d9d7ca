"""File sources: a user's CSV or Parquet file (or several, by glob) becomes the home's ``data/raw.csv``.

``data/raw.csv`` is always in the lab's dialect (comma-separated, decimal dot),
so every later stage reads it the same way, whatever the source:

* a CSV in the lab's dialect is copied byte for byte (header once, then every
  file's rows in name order), streamed in blocks, so a file of any size costs
  one block of memory; on the way the bytes are checked (UTF-8, a byte-order
  mark tolerated);
* a CSV in another dialect (``source: csv: {sep: ";", decimal: ","}``) is
  converted by DuckDB, streaming: fields re-quoted for commas, the decimal
  commas of the contract's integer and float features made dots; a number
  written in the other decimal mark is refused, naming the file and the column;
* Parquet files are written out by DuckDB, row group by row group
  (:mod:`.parquet` says how types are spelled and which are refused).

Every file's header must name exactly the contract's columns (missing and
extra columns are named), every file of a glob the same header, and there must
be at least one row. A file that fails leaves ``data/raw.csv`` as it was.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _duck
from .. import contract as _contract
from .._io import atomic_file, atomic_write
from ..exceptions import DataError, InvalidParameter
from . import parquet
from .dialect import refuse_other_dialect, split_header

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Header:
    """A CSV file's first line: its bytes (without the line ending) and its column names."""

    raw: bytes
    columns: tuple[str, ...]


def source_files(pattern: str, *, root: Path) -> list[Path]:
    """The files a source path or glob names (relative to the home ``root``), in name order.

    Raises
    ------
    DataError
        Nothing matches.
    """
    path = Path(pattern).expanduser()
    if not path.is_absolute():
        path = root / path
    if glob.has_magic(str(path)):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
    else:
        files = [path] if path.is_file() else []
    if not files:
        what = "matches no file" if glob.has_magic(str(path)) else "does not exist"
        raise DataError(f"the data source {path} {what}: fix source.path in dataset.yaml or pass -p source=FILE",
                        path=str(path))
    return files


def read_header(path: Path, dialect: _contract.CsvDialect = _contract.CsvDialect(), *,
                hint: str = "set source.csv.sep in dataset.yaml") -> Header:
    """The header line of a CSV file, split in ``dialect``.

    Raises
    ------
    DataError
        The file is empty, its header is not UTF-8 or looks separated by another separator than
        ``dialect``'s (the message shows the header and ends with ``hint``), or it names a column twice.
    """
    try:
        with open(path, "rb") as fh:
            line = fh.readline(1 << 20)
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a CSV file", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
    raw = line.rstrip(b"\r\n")
    if not raw.removeprefix(_BOM).strip():
        raise DataError(f"{path} is empty or has no header line; the first line must name the columns",
                        path=str(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} in its header); "
                        "save it as UTF-8 (a Parquet file needs a .parquet name)", path=str(path)) from None
    columns = split_header(text, dialect.sep)
    if len(columns) == 1:
        refuse_other_dialect(path, text, dialect, hint=hint)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{path} names the column(s) {', '.join(dupes)} more than once", path=str(path))
    if "" in columns:
        raise DataError(f"{path} has a column without a name (position {columns.index('') + 1})", path=str(path))
    return Header(raw=raw, columns=columns)


def check_header(columns: tuple[str, ...], contract: _contract.Contract, path: Path) -> None:
    """Refuse a header that differs from the contract, naming the missing and the extra columns."""
    missing = [c for c in contract.columns if c not in columns]
    extra = [c for c in columns if c not in contract.known_columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"extra column(s) {', '.join(extra)} (list them under dropped: in dataset.yaml to "
                         "ignore them)")
        raise DataError(f"{path} does not match the contract {contract.name!r}: " + "; ".join(parts),
                        path=str(path), missing=missing, extra=extra)


@dataclass(frozen=True)
class Ingested:
    """What :func:`ingest` copied: the source files, the rows, where they went."""

    files: tuple[str, ...]
    rows: int
    path: str


def _copy_checked(src: Path, out, *, skip_header: bool, decoder) -> int:
    """Append ``src`` to ``out`` (without its header line when ``skip_header``); return its data lines."""
    lines = 0
    offset = 0
    last = b""
    with open(src, "rb") as fh:
        if skip_header:
            offset = len(fh.readline(1 << 20))
        else:
            head = fh.readline(1 << 20)
            offset = len(head)
            out.write(head)
            last = head[-1:]
        while block := fh.read(_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise DataError(f"{src} is not UTF-8 text (byte {block[exc.start:exc.start + 1]!r} at offset "
                                f"{offset + exc.start}); save it as UTF-8", path=str(src)) from None
            lines += block.count(b"\n")
            out.write(block)
            offset += len(block)
            last = block[-1:]
        if last and last != b"\n":  # a last line without its newline: end it, so the next file starts a line
            out.write(b"\n")
            lines += 1
    return lines


def ingest(contract: _contract.Contract, *, root: Path, target: Path, source: str | None = None,
           n_rows: int | None = None, seed: int = 42) -> Ingested:
    """Copy the contract's file source (or ``source``) to ``target``, checked; optionally a seeded sample.

    Parameters
    ----------
    contract : Contract
    root : Path
        The home's root (relative source paths start there).
    target : Path
        Normally ``data/raw.csv``; written atomically.
    source : str, optional
        A file or glob instead of the contract's ``source.path``.
    n_rows : int, optional
        Keep a random sample of this many rows (seeded by ``seed``, in file order); default every row.

    Raises
    ------
    DataError
        No file, not UTF-8, a header that differs from the contract, no rows, fewer rows than ``n_rows``.
    """
    pattern = source or contract.source.path
    if pattern is None:
        raise InvalidParameter("this contract has no file source (it uses the lab generator); pass -p source=FILE",
                               name="source")
    files = source_files(pattern, root=root)
    formats = {parquet.is_parquet(p) for p in files}
    if len(formats) > 1:
        raise DataError(f"{pattern} names both Parquet and CSV files: a source is one or the other",
                        path=str(pattern))
    if formats == {True}:
        rows = _from_parquet(files, contract, target)
    else:
        rows = _from_csv(files, contract, target)
    if n_rows is not None:
        rows = _sample(target, n_rows, seed=seed, rows=rows)
    log.info("copied %d rows from %d file(s) to %s", rows, len(files), target)
    return Ingested(files=tuple(str(p) for p in files), rows=rows, path=str(target))


def _from_csv(files: list[Path], contract: _contract.Contract, target: Path) -> int:
    """CSV files to ``target``: copied byte for byte in the lab's dialect, else converted; the rows written."""
    dialect = contract.source.csv
    headers = [read_header(p, dialect) for p in files]
    check_header(headers[0].columns, contract, files[0])
    for path, header in zip(files[1:], headers[1:]):
        if header.columns != headers[0].columns:
            raise DataError(f"{path} has another header than {files[0]}: every file of a source needs the same "
                            "columns in the same order", path=str(path))
    if not dialect.is_default:
        return _converted(files, headers[0].columns, contract, target)
    rows = 0
    with atomic_file(target, "wb") as out:  # an error below leaves the previous file in place
        for i, path in enumerate(files):
            rows += _copy_checked(path, out, skip_header=i > 0, decoder=codecs.getincrementaldecoder("utf-8")())
        if rows == 0:
            raise DataError(f"{files[0]} has a header but no rows", path=str(files[0]))
    return rows


def _from_parquet(files: list[Path], contract: _contract.Contract, target: Path) -> int:
    """Parquet files to ``target`` in the lab's dialect (checked against the contract first); the rows written."""
    cols = parquet.read_schema(files)
    check_header(tuple(c.name for c in cols), contract, files[0])
    rows = [0]

    def write(tmp: Path) -> None:
        rows[0] = parquet.to_lab_csv(files, tmp, target_column=contract.target.column)[1]
        if rows[0] == 0:
            raise DataError(f"{files[0]} has no rows", path=str(files[0]))

    atomic_write(target, write)  # an error leaves the previous file in place
    return rows[0]


def csv_scan(dialect: _contract.CsvDialect, columns: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """A DuckDB ``read_csv`` of ``$files`` (every cell as text, strict) in ``dialect``, and its parameters
    (``files`` left for the caller); the file's name is the column ``filename``."""
    src = ("read_csv($files, header=true, all_varchar=true, delim=$sep, quote='\"', escape='\"', strict_mode=true, "
           "auto_detect=false, columns=$columns, filename=true)")
    return src, {"sep": dialect.sep, "columns": {c: "VARCHAR" for c in columns}}


def _converted(files: list[Path], columns: tuple[str, ...], contract: _contract.Contract, target: Path) -> int:
    """CSV files in the contract's dialect to ``target`` in the lab's, by DuckDB (streaming); the rows written."""
    import duckdb

    dialect = contract.source.csv
    numbers = [c for c in columns if c in {f.name for f in contract.features if f.type in (_contract.INTEGER,
                                                                                              _contract.FLOAT)}]
    src, args = csv_scan(dialect, columns)
    args["files"] = [str(p) for p in files]
    con = _duck.connect(parquet.MEMORY_LIMIT, ordered=True)
    rows = [0]
    try:
        _check_decimals(con, src, args, numbers, dialect)
        exprs = [f"replace({_duck.ident(c)}, ',', '.') AS {_duck.ident(c)}" if c in numbers and dialect.decimal == ","
                 else _duck.ident(c) for c in columns]

        def write(tmp: Path) -> None:
            rows[0] = int(con.execute(f"COPY (SELECT {', '.join(exprs)} FROM {src}) TO '{parquet.sql_path(tmp)}' "
                                      "(FORMAT csv, HEADER true, DELIMITER ',')", args).fetchone()[0])
            if rows[0] == 0:
                raise DataError(f"{files[0]} has a header but no rows", path=str(files[0]))

        atomic_write(target, write)
    except duckdb.Error as exc:
        raise csv_error(files[0] if len(files) == 1 else Path(f"one of {len(files)} files ({files[0]} ...)"),
                        exc) from None
    finally:
        con.close()
    return rows[0]


def _check_decimals(con: Any, src: str, args: dict[str, Any], numbers: list[str],
                    dialect: _contract.CsvDialect) -> None:
    """Refuse a number written with the other decimal mark than the contract's, naming the file and the column."""
    if not numbers:
        return
    if dialect.decimal == ",":  # a dot is the other mark, or a thousands separator: both ambiguous here
        bad = [f"contains({_duck.ident(c)}, '.')" for c in numbers]
    else:
        bad = [f"regexp_full_match(trim({_duck.ident(c)}), '[+-]?[0-9]+,[0-9]+')" for c in numbers]
    aggs = ", ".join(f"count(*) FILTER (WHERE {b}), first({_duck.ident(c)}) FILTER (WHERE {b}), "
                     f"first(filename) FILTER (WHERE {b})" for c, b in zip(numbers, bad))
    found = con.execute(f"SELECT {aggs} FROM {src}", args).fetchone()
    for k, c in enumerate(numbers):
        n, example, path = found[3 * k: 3 * k + 3]
        if n:
            other = "dot" if dialect.decimal == "," else "comma"
            raise DataError(f"{path}: column {c!r} has {n:,} number(s) written with a decimal {other} (e.g. "
                            f"{example!r}), but the contract's csv.decimal is {dialect.decimal!r}: fix "
                            "source.csv.decimal in dataset.yaml (numbers have no thousands separator)",
                            path=str(path), column=c)


def csv_error(path: Path, exc: Exception) -> DataError:
    """A DuckDB error reading a CSV as one line naming the file (and the line when DuckDB gives it)."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if "unicode" in text.lower() or "utf-8" in text.lower() or "utf8" in text.lower():
        return DataError(f"{path} is not UTF-8 text ({first}); save it as UTF-8", path=str(path))
    line = re.search(r"[Ll]ine:? ?(\d+)", text)
    where = f" near line {line.group(1)}" if line else ""
    return DataError(f"cannot parse {path} as CSV{where}: {first}", path=str(path))


def _sample(path: Path, n_rows: int, *, seed: int, rows: int) -> int:
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise InvalidParameter(f"n_rows must be a positive integer, got {n_rows!r}", name="n_rows")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if n_rows > len(frame):
        raise InvalidParameter(f"n_rows={n_rows} is more than the {len(frame)} rows of the source; omit n_rows to "
                               "use every row", name="n_rows")
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n_rows, replace=False))
    buf = io.StringIO()
    frame.iloc[keep].to_csv(buf, index=False)
    with atomic_file(path, "w") as out:
        out.write(buf.getvalue())
    return n_rows
