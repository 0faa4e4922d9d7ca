"""Batch scoring: score a CSV file of any size in chunks, with bounded memory.

:func:`score_file` reads the input in blocks of whole lines (``chunk_bytes``
each, default 2 MiB, about 65,000 rows), validates every row against the
model's dataset contract (:func:`churn_lib.contract.check_frame`, the rules
the quality stage and the API apply: valid ranges, whole numbers, categories
after normalisation, each column's own missing tokens, so the lab's ``NA``
is North America), scores the valid rows with the registry's model through :mod:`churn_lib.scoring` (the
compiled numpy scorer when it verifies) and appends them to the output. Memory
stays near 20 times one block on top of the interpreter and the model, whatever
the file's size (about 200 MiB in all with the defaults).

The output keeps every valid input row byte for byte, in input order, and adds
three columns: ``probability`` (6 decimals, like the API), ``prediction`` (at
the threshold stored with the model) and ``version`` (the model's label).
With ``explain=N`` it adds the API's explanation as columns (:func:`explain_columns`):
``explain_base``, then ``reason_k`` (a feature's name) and ``contribution_k``
(its contribution to the log-odds, 6 decimals) for the top N features by
|contribution|, then ``explain_other`` (the rest's sum); the reasons' values are
the row's own columns.
Rows that cannot be scored are never dropped silently: they go, unchanged, to
a rejects file (default ``<output>.rejects.csv``) after two columns, ``line``
(the line number in the input, the header being line 1) and ``reason``. Output
rows plus rejected rows are exactly the input rows.

With a Dask scheduler (:mod:`churn_lib.scale.cluster`), the input is cut into
partitions at line boundaries (``partition_bytes``, default 32 MiB), each
worker scores its partitions into part files beside the output, and the
parts are concatenated in order. The model is loaded once, through the
registry (sha256-checked), by the caller and shipped to the workers; workers
need the input and output folders (a shared filesystem on a real cluster),
not the registry.

Limits: one record per line (no line breaks inside quoted fields), UTF-8 (a
byte-order mark is tolerated), comma-separated. Parquet is not read: the
project's data is CSV end to end and pyarrow would be the heaviest dependency
of the package; the block reader is the only part a Parquet reader would replace.

Examples
--------
>>> from churn_lib import batch                                        # doctest: +SKIP
>>> result = batch.score_file("customers.csv", "scores.csv", model="v3")  # doctest: +SKIP
>>> result.summary()                                                  # doctest: +SKIP
'scored 9,998,713 of 10,000,000 rows with v3 ...'
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import pandas as pd

from .. import contract as _contract
from .. import scoring
from ..data.csv import read_options
from ..exceptions import DataError, InvalidParameter
from ..home import Home

log = logging.getLogger(__name__)

#: Columns added to every output row, in order.
OUTPUT_COLUMNS: tuple[str, ...] = ("probability", "prediction", "version")


def explain_columns(n: int) -> tuple[str, ...]:
    """Columns ``--explain N`` adds after :data:`OUTPUT_COLUMNS`: the base log-odds, each of the top N
    reasons' feature and contribution, and the sum of the other contributions (the API's explanation)."""
    return ("explain_base", *(c for k in range(1, n + 1) for c in (f"reason_{k}", f"contribution_{k}")),
            "explain_other")

#: Columns of the rejects file placed before the input's own columns.
REJECT_COLUMNS: tuple[str, ...] = ("line", "reason")
DEFAULT_CHUNK_BYTES = 2 << 20
DEFAULT_PARTITION_BYTES = 32 << 20
_MIN_CHUNK_BYTES = 1 << 10

_NL, _CR, _COMMA, _QUOTE = 10, 13, 44, 34


# --- results -------------------------------------------------------------------

@dataclass
class BatchProgress:
    """Where a batch run is: bytes of the input done, rows scored and rejected so far."""

    bytes_done: int
    bytes_total: int
    rows_scored: int
    rows_rejected: int

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


@dataclass
class BatchResult:
    """What :func:`score_file` did.

    Attributes
    ----------
    rows_in, rows_scored, rows_rejected : int
        Data rows read, written to the output, written to the rejects file.
    reasons : dict
        Rejected rows per rule (``"region: unknown category"``); a row
        breaking several rules counts under each.
    engine : str
        ``"numpy"`` (compiled scorer) or ``"sklearn"``; ``engine_note`` says why.
    partitions : int
        Partitions scored on a Dask cluster (0 when scored in this process).
    """

    input: str
    output: str
    rejects: str
    version: str
    model_file: str
    threshold: float
    engine: str
    engine_note: str
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    partitions: int = 0
    scheduler: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One paragraph: what was scored with which model, where it went, what was rejected."""
        where = (f"on {self.scheduler} ({self.partitions} partitions)" if self.scheduler else "in this process")
        text = (f"scored {self.rows_scored:,} of {self.rows_in:,} rows with {self.version} ({self.model_file}, "
                f"threshold {self.threshold:.2f}, {self.engine} scorer) {where} in {self.seconds:.1f} s "
                f"({self.rows_per_second:,.0f} rows/s) -> {self.output}")
        if self.rows_rejected:
            top = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5])
            text += f"; rejected {self.rows_rejected:,} rows ({top}) -> {self.rejects}"
        else:
            text += "; no row rejected"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}


# --- the input's layout ----------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """The input's header: raw bytes (re-used in the outputs), names, line ending, offset of the data."""

    header: bytes
    columns: tuple[str, ...]
    newline: bytes
    data_start: int
    size: int
    explain: int = 0  # reasons added to each output row (0: none)

    @property
    def added(self) -> tuple[str, ...]:
        """The columns the output adds."""
        return OUTPUT_COLUMNS + (explain_columns(self.explain) if self.explain else ())


def _read_layout(path: Path, contract: _contract.Contract, explain: int = 0) -> _Layout:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            line = fh.readline()
            data_start = fh.tell()
    except FileNotFoundError:
        raise DataError(f"input file {path} does not exist", path=str(path)) from None
    except IsADirectoryError:
        raise DataError(f"input {path} is a folder, not a CSV file", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
    if not line.strip():
        raise DataError(f"{path} is empty or has no header line; the first line must name the columns",
                        path=str(path))
    newline = b"\r\n" if line.endswith(b"\r\n") else b"\n"
    header = line.rstrip(b"\r\n")
    try:
        text = header.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"the header of {path} is not UTF-8 text; is it a CSV file?", path=str(path)) from None
    columns = tuple(c.strip() for c in next(csv.reader([text])))
    missing = [c for c in contract.feature_names if c not in columns]
    if missing:
        raise DataError(f"{path} lacks the feature column(s) {', '.join(missing)} of the model's contract "
                        f"{contract.name!r}; its header has {', '.join(columns)}", path=str(path))
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{path} names the column(s) {', '.join(dupes)} more than once", path=str(path))
    layout = _Layout(header=header, columns=columns, newline=newline, data_start=data_start, size=size,
                     explain=explain)
    taken = [c for c in layout.added if c in columns]
    if taken:
        raise DataError(f"{path} already has column(s) {', '.join(taken)}, which the output adds; "
                        "rename them in the input", path=str(path))
    return layout


# --- validation ------------------------------------------------------------------

def validate(frame: pd.DataFrame, contract: _contract.Contract | None = None
             ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, Counter]:
    """Check rows of features as read from a CSV against the contract; return what the scorer needs.

    The rules are the contract's (:func:`churn_lib.contract.check_frame`): every
    feature present; numbers are numbers, finite, whole for integer features
    and inside their ranges; categories, after normalisation, among the
    allowed values (unless unseen ones are ignored); a missing value only
    where the model fills it in.

    Parameters
    ----------
    frame : pandas.DataFrame
        The feature columns as read (numbers or text; categories as text or
        ``category`` dtype; missing values as NaN).
    contract : Contract, optional
        Default the lab's.

    Returns
    -------
    features : dict
        Feature -> column for the valid rows only (floats, NaN where the model
        fills a value in; categories as a ``Categorical``).
    ok : numpy.ndarray of bool
        One per input row.
    reasons : numpy.ndarray of str
        One per input row ("" when valid); several broken rules are joined by "; ".
    counts : collections.Counter
        Rejected rows per rule.

    Examples
    --------
    On the lab's contract (any contract's feature names work the same way):

    >>> frame = pd.DataFrame({"tenure_months": [6, 250], "num_complaints": [3, 0],
    ...     "avg_session_minutes": [12.5, 1.0], "plan_type": ["basic", "Gold"], "region": [" na", "EU"]})
    >>> _, ok, reasons, _ = validate(frame)
    >>> ok.tolist(), reasons[1]
    ([True, False], "tenure_months=250 is outside 0..200; plan_type='Gold' is not one of basic, premium")
    """
    c = contract or _contract.lab()
    check = _contract.check_frame(frame, c, target=False, ids=False)
    bad = check.bad_rows()
    reasons = np.full(len(frame), "", dtype=object)
    idx = np.flatnonzero(bad)
    if len(idx):
        reasons[idx] = check.reasons(idx)
    ok = ~bad
    return check.features(ok), ok, reasons, Counter(check.counts())


# --- one block of whole lines ------------------------------------------------------

@dataclass
class _BlockResult:
    lines: int = 0
    scored: int = 0
    rejected: int = 0
    counts: Counter = field(default_factory=Counter)

    def add(self, other: "_BlockResult") -> None:
        self.lines += other.lines
        self.scored += other.scored
        self.rejected += other.rejected
        self.counts.update(other.counts)


def _field_counts(buf: np.ndarray, block: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Fields per line: commas + 1, or the csv module's count when the block has quotes."""
    if _QUOTE not in block:
        commas = np.add.reduceat((buf == _COMMA).view(np.uint8), starts, dtype=np.int64)
        return commas + 1
    return np.array([len(next(csv.reader([block[a:b].decode("utf-8", "replace")]), [""]))
                     for a, b in zip(starts.tolist(), ends.tolist())], dtype=np.int64)


def _suffixes(proba: np.ndarray, pred: np.ndarray, version: bytes) -> np.ndarray:
    """``,0.123456,1,<version>`` per row as a fixed-width byte matrix (no per-row Python formatting)."""
    q = np.rint(np.clip(proba, 0.0, 1.0) * 1e6).astype(np.int64)
    out = np.empty((len(q), 12 + len(version)), dtype=np.uint8)
    out[:, 0] = _COMMA
    out[:, 1] = 48 + q // 1_000_000
    out[:, 2] = ord(".")
    for k in range(6):
        out[:, 3 + k] = 48 + (q // 10 ** (5 - k)) % 10
    out[:, 9] = _COMMA
    out[:, 10] = 48 + pred.astype(np.uint8)
    out[:, 11] = _COMMA
    out[:, 12:] = np.frombuffer(version, dtype=np.uint8)
    return out


#: "000" .. "999" as bytes: three digits per lookup instead of three integer divisions.
_DIGITS3 = np.frombuffer("".join(f"{k:03d}" for k in range(1000)).encode(), dtype=np.uint8).reshape(1000, 3)


def _decimal_width(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Fixed-point parts of ``values`` at 6 decimals: ``(|q|, whole-part digit counts, widest count)``.

    ``q`` is int32 when every value is below 2,147 in size (contributions in log-odds are), which halves
    the work of the digit arithmetic; int64 otherwise.
    """
    size = np.abs(values)
    top = float(size.max()) if len(size) else 0.0
    kind = np.int32 if top < 2147.0 else np.int64
    q = np.rint(size * 1e6).astype(kind)
    width = 1
    while top >= 10.0 ** width - 5e-7:
        width += 1
    digits = np.ones(len(q), dtype=kind)
    for k in range(1, width):
        digits += q >= kind(10 ** (k + 6))
    return q, digits, width


def _put_decimals(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Write ``-12.345678`` per value (6 decimals) into ``out`` (rows x :func:`_decimal_columns`), right-aligned
    with zero bytes before the text (the caller drops them); returns the length of each text."""
    q, digits, width = _decimal_width(values)
    rest, frac = np.divmod(q, q.dtype.type(1_000_000))
    negative = (values < 0) & (q > 0)
    out[:, 0] = negative * np.uint8(ord("-"))
    k = width
    while k > 0:  # the whole part, three digits per lookup, from the right
        take = min(3, k)
        if k == width and width <= 3:
            out[:, 1:1 + width] = _DIGITS3[rest][:, 3 - width:]
            break
        rest, low = np.divmod(rest, rest.dtype.type(1000))
        out[:, 1 + k - take:1 + k] = _DIGITS3[low][:, 3 - take:]
        k -= take
    if width > 1:  # no leading zeros: zero bytes, dropped with the padding
        lead = out[:, 1:width]
        lead[np.arange(width - 1)[None, :] < (width - digits)[:, None]] = 0
    out[:, 1 + width] = ord(".")
    hi, lo = np.divmod(frac, frac.dtype.type(1000))
    out[:, 2 + width:5 + width] = _DIGITS3[hi]
    out[:, 5 + width:8 + width] = _DIGITS3[lo]
    return negative + digits + 7


def _decimal_columns(values: np.ndarray) -> int:
    """The width :func:`_put_decimals` needs for ``values``."""
    return 1 + _decimal_width(values)[2] + 7


def _decimals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``-12.345678`` per value (6 decimals) as a zero-padded byte matrix and the mask of its bytes."""
    out = np.zeros((len(values), _decimal_columns(values)), dtype=np.uint8)
    _put_decimals(out, values)
    return out, out != 0


def _explained_suffixes(suffix: np.ndarray, base: np.ndarray, top: np.ndarray, contrib: np.ndarray,
                        other: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The fixed suffix, then ``,base,name_1,c_1,...,other`` per row, as one zero-padded byte matrix.

    Numbers and names vary in width: a column slice per piece (every piece
    vectorised), with zero bytes where a row's piece is shorter than its slice;
    :func:`_with_padded_suffixes` drops them.
    """
    n = len(suffix)
    encoded = [name.encode() for name in names]
    longest = max(len(e) for e in encoded)
    table = np.zeros((len(encoded), longest + 1), dtype=np.uint8)  # ",name" per feature, zero-padded
    for k, e in enumerate(encoded):
        table[k, 0] = _COMMA
        table[k, 1:1 + len(e)] = np.frombuffer(e, dtype=np.uint8)
    numbers = [base, *(contrib[:, j] for j in range(top.shape[1])), other]
    widths = [1 + _decimal_columns(v) for v in numbers]  # ",number"
    total = suffix.shape[1] + sum(widths) + top.shape[1] * (longest + 1)
    matrix = np.empty((n, total), dtype=np.uint8)
    matrix[:, :suffix.shape[1]] = suffix
    at = suffix.shape[1]

    def number(values: np.ndarray, width: int) -> None:
        nonlocal at
        matrix[:, at] = _COMMA
        _put_decimals(matrix[:, at + 1:at + width], values)
        at += width

    number(numbers[0], widths[0])
    for j in range(top.shape[1]):
        matrix[:, at:at + longest + 1] = table[top[:, j]]
        at += longest + 1
        number(numbers[1 + j], widths[1 + j])
    number(numbers[-1], widths[-1])
    return matrix


def _with_padded_suffixes(kept: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """:func:`_with_suffixes` for suffixes of different lengths: row i's suffix is ``padded[i]`` without its zero bytes.

    Each line is laid out in one row of a byte matrix (content, suffix, line
    ending), then the bytes that belong to the output are taken in one pass: the
    content by position (a line may hold any byte), the suffix where it is not
    zero. A block whose longest line would make the matrix much larger than the
    output is laid out in halves, so one long line costs its half, not the block.
    """
    n = len(padded)
    nl = np.flatnonzero(kept == _NL)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    cr = (nl > starts) & (kept[np.maximum(nl - 1, 0)] == _CR)  # lines ending in \r\n
    content = nl - starts - cr
    widest = int(content.max())
    if n > 1 and n * widest > 4 * len(kept) + (1 << 16):
        half = n // 2
        cut = int(nl[half - 1]) + 1
        return np.concatenate([_with_padded_suffixes(kept[:cut], padded[:half]),
                               _with_padded_suffixes(kept[cut:], padded[half:])])
    width = widest + padded.shape[1] + 2
    matrix = np.zeros((n, width), dtype=np.uint8)
    index_type = np.int32 if n * width < 2 ** 31 else np.int64
    line = content + cr + 1
    shift = np.repeat((np.arange(n, dtype=index_type) * width - starts.astype(index_type)), line)
    shift += np.arange(len(kept), dtype=index_type)
    matrix.ravel()[shift] = kept  # each whole line at the start of its row; its ending is re-written below
    matrix[:, widest:widest + padded.shape[1]] = padded
    matrix[:, -2] = _CR * cr
    matrix[:, -1] = _NL
    take = matrix != 0
    take[:, :widest] = np.arange(widest)[None, :] < content[:, None]
    return matrix.ravel()[take.ravel()]


def _with_suffixes(kept: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """Lines (bytes, each ending in ``\\n`` or ``\\r\\n``) with row i's suffix inserted before its line ending.

    One scatter: a content byte of line i moves right by ``i * width``, a
    line-ending byte by ``(i + 1) * width``; the suffixes fill the gaps. int32
    positions and column-wise suffix writes keep the temporaries near 10x the
    block (``numpy.insert`` needs about 25x).
    """
    n, width = suffix.shape
    is_nl = kept == _NL
    ending = is_nl.copy()
    ending[:-1] |= (kept[:-1] == _CR) & is_nl[1:]
    shift = np.cumsum(is_nl, dtype=np.int32)
    shift -= is_nl  # line number of each byte: newlines strictly before it
    shift += ending
    shift *= width
    shift += np.arange(len(kept), dtype=np.int32)
    out = np.empty(len(kept) + n * width, dtype=np.uint8)
    out[shift] = kept
    first = np.flatnonzero(ending & ~np.concatenate(([False], ending[:-1])))  # first ending byte of each line
    first += np.arange(0, n * width, width, dtype=first.dtype)
    for j in range(width):
        out[first + j] = suffix[:, j]
    return out


def _score_block(block: bytes, first_line: int, layout: _Layout, scorer: scoring.Scorer,
                 out: BinaryIO, rejects: BinaryIO) -> _BlockResult:
    """Validate and score one block of whole lines (ending in a newline); write both outputs.

    Lines are located with numpy (one pass over the bytes); valid lines are
    copied to ``out`` unchanged with the fixed-width suffix inserted before
    each line ending, so no row is re-formatted.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(buf == _NL)
    n = len(nl)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    ends = nl - ((nl > starts) & (buf[np.maximum(nl - 1, 0)] == _CR))  # content ends, before \r\n
    width = _field_counts(buf, block, starts, ends)
    empty = ends == starts
    bad_width = (width != len(layout.columns)) | empty
    good = np.flatnonzero(~bad_width)
    # Lines with the wrong number of fields never reach the parser (pandas would silently cut or pad them).
    parse_bytes = block if not bad_width.any() else buf[np.repeat(~bad_width, nl - starts + 1)].tobytes()
    contract = scorer.contract
    options = read_options(contract, contract.feature_names)
    options["dtype"] = {f.name: "category" for f in contract.categorical}
    frame = pd.read_csv(io.BytesIO(parse_bytes), header=None, names=list(layout.columns),
                        usecols=list(contract.feature_names), index_col=False, skip_blank_lines=False,
                        encoding="utf-8", encoding_errors="replace", low_memory=False, **options)
    if len(frame) != len(good):
        raise DataError(f"lines {first_line}..{first_line + n - 1} of the input did not parse as {len(good)} "
                        "rows; line breaks inside quoted fields are not supported", line=first_line)
    features, ok_good, reasons_good, counts = validate(frame, contract)
    ok = np.zeros(n, dtype=bool)
    ok[good] = ok_good
    if bad_width.any():
        counts["line: wrong number of fields"] += int((bad_width & ~empty).sum())
        counts["line: empty"] += int(empty.sum())
    result = _BlockResult(lines=n, scored=int(ok.sum()), rejected=int(n - ok.sum()),
                          counts=Counter({k: v for k, v in counts.items() if v}))
    if result.scored:
        kept = buf if result.scored == n else buf[np.repeat(ok, nl - starts + 1)]
        if layout.explain:
            proba, base, top, contrib, other = scorer.explain(features, layout.explain)
            suffix = _suffixes(proba, (proba >= scorer.threshold).astype(int), scorer.version.encode())
            padded = _explained_suffixes(suffix, base, top, contrib, other, scorer.features)
            out.write(_with_padded_suffixes(kept, padded).tobytes())
        else:
            proba, pred = scorer.predict(features)
            suffix = _suffixes(proba, pred, scorer.version.encode())
            out.write(_with_suffixes(kept, suffix).tobytes())
    if result.rejected:
        reasons = np.full(n, "", dtype=object)
        reasons[good] = reasons_good
        lines = []
        for i in np.flatnonzero(~ok).tolist():
            reason = reasons[i] or ("empty line" if empty[i] else
                                    f"has {width[i]} fields, the header has {len(layout.columns)}")
            quoted = '"' + reason.replace('"', '""') + '"'
            lines.append(b"%d,%s,%s%s" % (first_line + i, quoted.encode(), block[starts[i]:ends[i]],
                                          layout.newline))
        rejects.write(b"".join(lines))
    return result


def _blocks(fh: BinaryIO, start: int, end: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
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


def _score_range(path: str, start: int, end: int, layout: _Layout, scorer: scoring.Scorer, out: BinaryIO,
                 rejects: BinaryIO, *, first_line: int, chunk_bytes: int,
                 progress: Callable[[int, _BlockResult], None] | None = None) -> _BlockResult:
    total = _BlockResult()
    with open(path, "rb") as fh:
        for pos, block in _blocks(fh, start, end, chunk_bytes):
            done = _score_block(block, first_line + total.lines, layout, scorer, out, rejects)
            total.add(done)
            if progress is not None:
                progress(pos, total)
    return total


def _score_partition(path: str, start: int, end: int, layout: _Layout, scorer: scoring.Scorer, parts: str,
                     index: int, chunk_bytes: int) -> _BlockResult:
    """Dask task: score one partition into ``part-<index>.csv`` / ``.rejects`` (line numbers local, from 0)."""
    folder = Path(parts)
    with open(folder / f"part-{index:06d}.csv", "wb") as out, \
            open(folder / f"part-{index:06d}.rejects", "wb") as rejects:
        return _score_range(path, start, end, layout, scorer, out, rejects, first_line=0, chunk_bytes=chunk_bytes)


def _partitions(path: Path, layout: _Layout, partition_bytes: int) -> list[tuple[int, int]]:
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


# --- writing the outputs ---------------------------------------------------------

@contextlib.contextmanager
def _atomic_outputs(*paths: Path) -> Iterator[list[BinaryIO]]:
    """Open temporary files beside ``paths``; on success rename them in order, else remove them."""
    handles: list[BinaryIO] = []
    temps: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append(Path(tmp))
            handles.append(os.fdopen(fd, "wb", buffering=1 << 20))
        yield handles
        for fh in handles:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    finally:
        for fh in handles:
            fh.close()
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def default_rejects(output: str | os.PathLike) -> Path:
    """Where rejected rows go by default: ``scores.csv`` -> ``scores.rejects.csv``.

    Examples
    --------
    >>> default_rejects("out/scores.csv").as_posix()
    'out/scores.rejects.csv'
    """
    path = Path(output)
    suffix = path.suffix or ".csv"
    return path.with_name(f"{path.name[: len(path.name) - len(path.suffix)]}.rejects{suffix}")


def _check_paths(src: Path, dst: Path, rej: Path) -> None:
    resolved = {name: p.expanduser().resolve() for name, p in (("input", src), ("output", dst), ("rejects", rej))}
    if len(set(resolved.values())) < 3:
        raise InvalidParameter(f"input, output and rejects must be three different files "
                               f"(got {src}, {dst}, {rej})", name="output")
    for name in ("output", "rejects"):
        if resolved[name].is_dir():
            raise InvalidParameter(f"{name} {resolved[name]} is a folder; give a file name", name=name)


def score_file(input: str | os.PathLike, output: str | os.PathLike, *, home: Home | str | None = None,
               model: str | None = None, rejects: str | os.PathLike | None = None,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, scheduler: str | None = None, n_workers: int | None = None,
               partition_bytes: int = DEFAULT_PARTITION_BYTES, explain: int | None = None,
               on_progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
    """Score every row of a CSV file with a registered model; write scores and rejects.

    Parameters
    ----------
    input : path
        A CSV with a header naming at least the model's features (any other
        columns, e.g. a customer id or the target, are carried through).
    output : path
        Written atomically: the input's header and valid rows, unchanged and
        in order, plus ``probability, prediction, version``.
    home : Home or path, optional
        The project home whose registry holds the model.
    model : str, optional
        Version label or model file; default the current model.
    rejects : path, optional
        Rejected rows with ``line`` and ``reason``; default :func:`default_rejects`.
        Always written (header only when nothing was rejected).
    chunk_bytes : int, default=2 MiB
        Bytes of input per block; peak memory grows by about 20 times this.
    scheduler : str, optional
        None scores in this process; ``"local"`` starts a local Dask cluster;
        an address (``tcp://HOST:8786``) uses that cluster, whose workers must
        see ``input`` and the output folder at the same paths.
    n_workers : int, optional
        Workers of a local cluster (default one per core).
    partition_bytes : int, default=32 MiB
        Bytes of input per Dask task.
    explain : int, optional
        Add each row's top ``explain`` reasons as columns (:func:`explain_columns`).
    on_progress : callable, optional
        Called with a :class:`BatchProgress` after each block (or partition on Dask).

    Returns
    -------
    BatchResult

    Raises
    ------
    DataError
        The input is missing, has no header, lacks a feature column, or has
        line breaks inside quoted fields.
    InvalidParameter
        Bad sizes, clashing paths, or an unreachable scheduler.
    NoCurrentModel, ModelNotFound, IntegrityError
        From the registry: no model to use, or its artifact fails its sha256.
    """
    started = time.perf_counter()
    home = Home.resolve(home)
    src, dst = Path(input), Path(output)
    rej = Path(rejects) if rejects is not None else default_rejects(dst)
    for name, value in (("chunk_bytes", chunk_bytes), ("partition_bytes", partition_bytes)):
        if not isinstance(value, int) or value < _MIN_CHUNK_BYTES:
            raise InvalidParameter(f"{name} must be at least {_MIN_CHUNK_BYTES} bytes, got {value!r}", name=name)
    _check_paths(src, dst, rej)
    n_explain = 0 if explain is None else scoring.check_explain(explain)
    scorer = scoring.load(model, home=home)  # sha256-checked by the registry, compiled and verified
    if n_explain and not scorer.explains:
        raise InvalidParameter(f"explain: model {scorer.version} cannot explain its answers ({scorer.engine_note})",
                               name="explain")
    layout = _read_layout(src, scorer.contract, n_explain)
    result = BatchResult(input=str(src), output=str(dst), rejects=str(rej), version=scorer.version,
                         model_file=scorer.model_file, threshold=scorer.threshold, engine=scorer.engine,
                         engine_note=scorer.engine_note)
    bom = b"\xef\xbb\xbf"
    header = layout.header + b"," + ",".join(layout.added).encode() + layout.newline
    rejects_header = (",".join(REJECT_COLUMNS).encode() + b"," + layout.header.removeprefix(bom) + layout.newline)
    with _atomic_outputs(rej, dst) as (rj, out):
        out.write(header)
        rj.write(rejects_header)
        if scheduler is None:
            def progress(pos: int, done: _BlockResult) -> None:
                if on_progress is not None:
                    on_progress(BatchProgress(pos, layout.size, done.scored, done.rejected))

            total = _score_range(str(src), layout.data_start, layout.size, layout, scorer, out, rj,
                                 first_line=2, chunk_bytes=chunk_bytes, progress=progress)
        else:
            total, result.partitions, result.scheduler = _score_on_cluster(
                src, dst, layout, scorer, out, rj, scheduler=scheduler, n_workers=n_workers,
                chunk_bytes=chunk_bytes, partition_bytes=partition_bytes, on_progress=on_progress)
    result.rows_in, result.rows_scored, result.rows_rejected = total.lines, total.scored, total.rejected
    result.reasons = dict(total.counts)
    result.seconds = round(time.perf_counter() - started, 3)
    log.info("%s", result.summary())
    return result


def _append_file(path: Path, out: BinaryIO) -> None:
    """Append a part file to ``out``; in the kernel (copy_file_range) where the platform has it."""
    out.flush()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(fh.fileno(), out.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
        except (AttributeError, OSError):  # no copy_file_range here (or across these filesystems)
            pass
        if copied < size:
            fh.seek(copied)
            out.seek(0, os.SEEK_END)
            shutil.copyfileobj(fh, out, 1 << 22)


def _score_on_cluster(src: Path, dst: Path, layout: _Layout, scorer: scoring.Scorer, out: BinaryIO,
                      rejects: BinaryIO, *, scheduler: str, n_workers: int | None, chunk_bytes: int,
                      partition_bytes: int, on_progress: Callable[[BatchProgress], None] | None
                      ) -> tuple[_BlockResult, int, str]:
    from distributed import as_completed

    from . import cluster

    ranges = _partitions(src, layout, partition_bytes)
    parts = Path(tempfile.mkdtemp(prefix=f".{dst.name}.parts-", dir=dst.parent))
    try:
        with cluster.connect(None if scheduler == cluster.LOCAL else scheduler, n_workers=n_workers) as client:
            where = cluster.describe(client)
            shipped = client.scatter(scorer, broadcast=True)
            futures = {client.submit(_score_partition, str(src.resolve()), a, b, layout, shipped, str(parts), k,
                                     chunk_bytes, pure=False): k for k, (a, b) in enumerate(ranges)}
            results: dict[int, _BlockResult] = {}
            done = _BlockResult()
            bytes_done = layout.data_start
            try:
                for future in as_completed(futures):
                    k = futures[future]
                    results[k] = future.result()
                    done.add(results[k])
                    bytes_done += ranges[k][1] - ranges[k][0]
                    if on_progress is not None:
                        on_progress(BatchProgress(bytes_done, layout.size, done.scored, done.rejected))
            except BaseException:
                client.cancel(list(futures))
                raise
        total = _BlockResult()
        for k in range(len(ranges)):
            _append_file(parts / f"part-{k:06d}.csv", out)
            base = 2 + total.lines  # part rejects number lines from 0 within the partition
            with open(parts / f"part-{k:06d}.rejects", "rb") as fh:
                for line in fh:
                    number, rest = line.split(b",", 1)
                    rejects.write(b"%d,%s" % (int(number) + base, rest))
            total.add(results[k])
        return total, len(ranges), where
    finally:
        shutil.rmtree(parts, ignore_errors=True)
