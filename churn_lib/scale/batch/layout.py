"""The input's layout: its header line, the columns the outputs add, and the bytes lines are cut at.

:func:`read_layout` reads and checks the header of the input (UTF-8, every
feature of the contract named once, none of the added columns taken) and
keeps its raw bytes, which both outputs re-use unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ... import contract as _contract
from ...data.dialect import refuse_other_dialect, split_header
from ...exceptions import DataError

#: Columns added to every output row, in order.
OUTPUT_COLUMNS: tuple[str, ...] = ("probability", "prediction", "version")
#: Columns of the rejects file placed before the input's own columns.
REJECT_COLUMNS: tuple[str, ...] = ("line", "reason")

#: Byte values of a line feed, a carriage return, a comma and a double quote.
NL, CR, COMMA, QUOTE, DOT = 10, 13, 44, 34, 46
_BOM = b"\xef\xbb\xbf"


def explain_columns(n: int) -> tuple[str, ...]:
    """Columns ``--explain N`` adds after :data:`OUTPUT_COLUMNS`: the base log-odds, each of the top N
    reasons' feature and contribution, and the sum of the other contributions (the API's explanation)."""
    return ("explain_base", *(c for k in range(1, n + 1) for c in (f"reason_{k}", f"contribution_{k}")),
            "explain_other")


@dataclass(frozen=True)
class Layout:
    """The input's header: raw bytes (re-used in the outputs), names, line ending, offset of the data."""

    header: bytes
    columns: tuple[str, ...]
    newline: bytes
    data_start: int
    size: int
    explain: int = 0  # reasons added to each output row (0: none)
    dialect: _contract.CsvDialect = _contract.CsvDialect()  # the input's separator and decimal mark

    @property
    def sep(self) -> int:
        """The separator's byte."""
        return ord(self.dialect.sep)

    @property
    def point(self) -> int:
        """The decimal mark's byte."""
        return ord(self.dialect.decimal)

    @property
    def added(self) -> tuple[str, ...]:
        """The columns the output adds."""
        return OUTPUT_COLUMNS + (explain_columns(self.explain) if self.explain else ())

    def output_header(self) -> bytes:
        """The output's header line: the input's, then the added columns."""
        sep = self.dialect.sep
        return self.header + sep.encode() + sep.join(self.added).encode() + self.newline

    def rejects_header(self) -> bytes:
        """The rejects file's header line: ``line,reason``, then the input's (without a byte-order mark)."""
        sep = self.dialect.sep
        return (sep.join(REJECT_COLUMNS) + sep).encode() + self.header.removeprefix(_BOM) + self.newline


def _first_line(path: Path) -> tuple[bytes, int, int]:
    """The first line of ``path`` as bytes, the offset after it and the file's size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            line = fh.readline()
            return line, fh.tell(), size
    except FileNotFoundError:
        raise DataError(f"input file {path} does not exist", path=str(path)) from None
    except IsADirectoryError:
        raise DataError(f"input {path} is a folder, not a CSV file", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None


def read_layout(path: Path, contract: _contract.Contract, explain: int = 0,
                dialect: _contract.CsvDialect = _contract.CsvDialect()) -> Layout:
    """The layout of the CSV file ``path`` in ``dialect``, checked against ``contract`` (see the module docstring).

    Raises
    ------
    DataError
        No such file, no header, a header that is not UTF-8, a feature column missing (a header that
        looks separated otherwise than ``dialect`` says is shown), a column named twice, or a column
        the output adds already there.
    """
    line, data_start, size = _first_line(path)
    if not line.strip():
        raise DataError(f"{path} is empty or has no header line; the first line must name the columns",
                        path=str(path))
    newline = b"\r\n" if line.endswith(b"\r\n") else b"\n"
    header = line.rstrip(b"\r\n")
    try:
        text = header.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"the header of {path} is not UTF-8 text; is it a CSV file?", path=str(path)) from None
    columns = split_header(text, dialect.sep)
    missing = [c for c in contract.feature_names if c not in columns]
    if missing:
        refuse_other_dialect(path, text, dialect, hint="pass --sep, or fix source.csv in the model's contract")
        raise DataError(f"{path} lacks the feature column(s) {', '.join(missing)} of the model's contract "
                        f"{contract.name!r}; its header has {', '.join(columns)}", path=str(path))
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{path} names the column(s) {', '.join(dupes)} more than once", path=str(path))
    layout = Layout(header=header, columns=columns, newline=newline, data_start=data_start, size=size,
                    explain=explain, dialect=dialect)
    taken = [c for c in layout.added if c in columns]
    if taken:
        raise DataError(f"{path} already has column(s) {', '.join(taken)}, which the output adds; "
                        "rename them in the input", path=str(path))
    return layout
