"""CSV dialects: sniffing a file's separator and decimal mark, and refusing a header written in another dialect.

``churn init`` sniffs the dialect of the file it profiles (:func:`sniff`) and
writes it under ``source: csv:`` for review; every reader of that source then
reads it in the contract's dialect and refuses a file whose header is
separated otherwise, showing the header it saw (:func:`header_columns`).
``data/raw.csv`` is always in the lab's dialect (comma, dot).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .. import contract as _contract
from ..exceptions import DataError

#: Bytes of the head of a file the sniffer reads.
SNIFF_BYTES = 1 << 16
#: Lines of that head it looks at.
SNIFF_LINES = 200
_COMMA_NUMBER = re.compile(r"\s*[+-]?\d+,\d+\s*")
_DOT_NUMBER = re.compile(r"\s*[+-]?\d*\.\d+([eE][+-]?\d+)?\s*")


def sniff(path: Path) -> _contract.CsvDialect:
    """The dialect of a CSV file, from its head: the separator that splits the header into the most columns
    (a comma on a tie), and a decimal comma when numbers like ``12,5`` outnumber those like ``12.5`` (a file
    that mixes both is then refused where it is read, naming the column).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "eu.csv"
    >>> _ = p.write_text("id;amount;plan\\n1;12,5;basic\\n2;3,25;premium\\n")
    >>> sniff(p)
    CsvDialect(sep=';', decimal=',')
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return _contract.CsvDialect()  # the reader that follows says what is wrong with the file
    if len(head) == SNIFF_BYTES and b"\n" in head:
        head = head[:head.rindex(b"\n")]
    lines = head.decode("utf-8-sig", errors="replace").splitlines()[:SNIFF_LINES]
    if not lines:
        return _contract.CsvDialect()
    widths = {sep: len(next(csv.reader([lines[0]], delimiter=sep), [])) for sep in _contract.SEPARATORS}
    sep = max(_contract.SEPARATORS, key=lambda s: widths[s])  # max keeps the first (the comma) on a tie
    if sep == "," or widths[sep] < 2:
        return _contract.CsvDialect()
    comma = dot = 0
    for row in csv.reader(lines[1:], delimiter=sep):
        for value in row:
            comma += bool(_COMMA_NUMBER.fullmatch(value))
            dot += bool(_DOT_NUMBER.fullmatch(value))
    return _contract.CsvDialect(sep=sep, decimal="," if comma > dot else ".")


def split_header(text: str, sep: str) -> tuple[str, ...]:
    """The column names of a header line (without its line ending), stripped."""
    return tuple(c.strip() for c in next(csv.reader([text], delimiter=sep), [""]))


def other_separator(text: str, sep: str) -> str | None:
    """Another separator that splits the header ``text`` into more columns than ``sep`` does (None: none does)."""
    own = len(split_header(text, sep))
    widths = {s: len(split_header(text, s)) for s in _contract.SEPARATORS if s != sep}
    best = max(widths, key=lambda s: widths[s])
    return best if widths[best] > own else None


def refuse_other_dialect(path: Path, text: str, dialect: _contract.CsvDialect, *, hint: str) -> None:
    """Refuse a header that is split by another separator than ``dialect``'s, showing the header as seen.

    Raises
    ------
    DataError
        The header looks separated by another separator; ``hint`` says how to say which one.
    """
    other = other_separator(text, dialect.sep)
    if other is None:
        return
    shown = text if len(text) <= 200 else text[:200] + "..."
    raise DataError(f"{path} looks separated by {_contract.SEPARATORS[other]}, not by "
                    f"{_contract.SEPARATORS[dialect.sep]} as expected: its header is {shown!r}; {hint} "
                    f"(sep: {other!r})", path=str(path), header=text)
