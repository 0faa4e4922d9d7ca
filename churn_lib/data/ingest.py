"""File sources: a user's CSV file (or several, by glob) becomes the home's ``data/raw.csv``.

The copy is byte for byte (header once, then every file's rows in name
order), streamed in blocks, so a file of any size costs one block of memory.
On the way the bytes are checked: UTF-8 (a byte-order mark is tolerated),
a header naming exactly the contract's columns (missing and extra columns are
named), the same header in every file, at least one row. A file that fails
leaves ``data/raw.csv`` as it was.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import contract as _contract
from .._io import atomic_file
from ..exceptions import DataError, InvalidParameter

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


def read_header(path: Path) -> Header:
    """The header line of a CSV file.

    Raises
    ------
    DataError
        The file is empty, its header is not UTF-8, or it is not comma-separated.
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
                        "save it as UTF-8", path=str(path)) from None
    columns = tuple(c.strip() for c in next(csv.reader([text])))
    if len(columns) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in text:
                raise DataError(f"{path} looks separated by {name}; churn-mlops reads comma-separated files "
                                "(save it as CSV with commas)", path=str(path))
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
    headers = [read_header(p) for p in files]
    check_header(headers[0].columns, contract, files[0])
    for path, header in zip(files[1:], headers[1:]):
        if header.columns != headers[0].columns:
            raise DataError(f"{path} has another header than {files[0]}: every file of a source needs the same "
                            "columns in the same order", path=str(path))
    rows = 0
    with atomic_file(target, "wb") as out:  # an error below leaves the previous file in place
        for i, path in enumerate(files):
            rows += _copy_checked(path, out, skip_header=i > 0, decoder=codecs.getincrementaldecoder("utf-8")())
        if rows == 0:
            raise DataError(f"{files[0]} has a header but no rows", path=str(files[0]))
    if n_rows is not None:
        rows = _sample(target, n_rows, seed=seed, rows=rows)
    log.info("copied %d rows from %d file(s) to %s", rows, len(files), target)
    return Ingested(files=tuple(str(p) for p in files), rows=rows, path=str(target))


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
