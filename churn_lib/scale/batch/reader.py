"""The block reader: the input as blocks of whole lines, and where each line of a block starts and ends.

:func:`blocks` reads a byte range of the file in blocks of about
``chunk_bytes`` that end at a line end; :func:`partitions` cuts the data into
such ranges for the workers of a cluster; :func:`locate_lines` finds the
lines of a block and counts their fields with numpy, in one pass over the
bytes (no per-line Python unless the block has quoted fields), split by the
input's separator. A Parquet input has its own reader (:mod:`.parquet`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .layout import COMMA, CR, NL, QUOTE, Layout

DEFAULT_CHUNK_BYTES = 2 << 20
DEFAULT_PARTITION_BYTES = 32 << 20
#: The smallest block or partition size accepted.
MIN_CHUNK_BYTES = 1 << 10


@dataclass(frozen=True)
class Lines:
    """The lines of one block: byte offsets, field counts, and which lines cannot be parsed as rows.

    ``nl`` is the offset of each line's ``\\n``, ``starts`` of its first byte,
    ``ends`` of the end of its content (before ``\\r\\n`` or ``\\n``).
    """

    buf: np.ndarray
    nl: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    width: np.ndarray  # fields per line
    empty: np.ndarray
    bad_width: np.ndarray  # empty, or not as many fields as the header

    @property
    def n(self) -> int:
        return len(self.nl)

    @property
    def good(self) -> np.ndarray:
        """Indices of the lines that go to the parser."""
        return np.flatnonzero(~self.bad_width)


def _field_counts(buf: np.ndarray, block: bytes, starts: np.ndarray, ends: np.ndarray, sep: int) -> np.ndarray:
    """Fields per line: separators + 1, or the csv module's count when the block has quotes."""
    if QUOTE not in block:
        commas = np.add.reduceat((buf == sep).view(np.uint8), starts, dtype=np.int64)
        return commas + 1
    return np.array([len(next(csv.reader([block[a:b].decode("utf-8", "replace")], delimiter=chr(sep)), [""]))
                     for a, b in zip(starts.tolist(), ends.tolist())], dtype=np.int64)


def locate_lines(block: bytes, n_columns: int, sep: int = COMMA) -> Lines:
    """The lines of ``block`` (whole lines, ending in a newline), checked against the header's ``n_columns``
    fields separated by the byte ``sep``."""
    buf = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(buf == NL)
    starts = np.empty(len(nl), dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    ends = nl - ((nl > starts) & (buf[np.maximum(nl - 1, 0)] == CR))  # content ends, before \r\n
    width = _field_counts(buf, block, starts, ends, sep)
    empty = ends == starts
    return Lines(buf=buf, nl=nl, starts=starts, ends=ends, width=width, empty=empty,
                 bad_width=(width != n_columns) | empty)


def blocks(fh: BinaryIO, start: int, end: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines between byte offsets ``start`` and ``end`` (both at line starts)."""
    fh.seek(start)
    pos = start
    while pos < end:
        block = fh.read(min(chunk_bytes, end - pos))
        if not block:
            break
        if not block.endswith(b"\n") and pos + len(block) < end:
            block += fh.readline()  # finish the line; never past ``end``, which starts a line
        pos += len(block)
        if not block.endswith(b"\n"):  # the file's last line has no newline
            block += b"\n"
        yield pos, block


def partitions(path: Path, layout: Layout, partition_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``partition_bytes`` covering the data, each starting and ending at a line start."""
    cuts = [layout.data_start]
    with open(path, "rb") as fh:
        at = layout.data_start + partition_bytes
        while at < layout.size:
            fh.seek(at - 1)
            fh.readline()  # to the start of the next line (reading from at-1 keeps a line starting at `at`)
            pos = fh.tell()
            if pos >= layout.size:
                break
            if pos > cuts[-1]:
                cuts.append(pos)
            at = max(pos, at) + partition_bytes
    cuts.append(layout.size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
