"""The formatter: score columns as bytes, inserted before each line ending of the valid lines.

No row is re-formatted and no number goes through Python's formatting: the
added columns are written as fixed-width byte matrices (:func:`suffixes`, and
:func:`explained_suffixes` for ``explain``, whose pieces vary in width and are
zero-padded), then spliced into the block's lines. When every line of a block
ends the same way (``\\n``, or ``\\r\\n``), :func:`spliced` cuts the block at its
line endings and the suffix matrix at its rows (both with ``bytes`` methods,
in C) and joins the pieces alternately; a block with mixed line endings is
spliced in one numpy scatter (:func:`with_suffixes`, :func:`with_padded_suffixes`).
This is the hot path of batch scoring: no step loops over rows in Python.
"""

from __future__ import annotations

from itertools import compress

import numpy as np

from .layout import COMMA, CR, DOT, NL


def suffixes(proba: np.ndarray, pred: np.ndarray, version: bytes, *, sep: int = COMMA, point: int = DOT
             ) -> np.ndarray:
    """``,0.123456,1,<version>`` per row as a fixed-width byte matrix (no per-row Python formatting); ``sep``
    and ``point`` are the bytes of the input's separator and decimal mark (``;0,123456;1;v1``)."""
    q = np.rint(np.clip(proba, 0.0, 1.0) * 1e6).astype(np.int64)
    out = np.empty((len(q), 12 + len(version)), dtype=np.uint8)
    out[:, 0] = sep
    out[:, 1] = 48 + q // 1_000_000
    out[:, 2] = point
    for k in range(6):
        out[:, 3 + k] = 48 + (q // 10 ** (5 - k)) % 10
    out[:, 9] = sep
    out[:, 10] = 48 + pred.astype(np.uint8)
    out[:, 11] = sep
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


def _put_decimals(out: np.ndarray, values: np.ndarray, point: int = DOT) -> np.ndarray:
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
    out[:, 1 + width] = point
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


def explained_suffixes(suffix: np.ndarray, base: np.ndarray, top: np.ndarray, contrib: np.ndarray,
                        other: np.ndarray, names: tuple[str, ...], *, sep: int = COMMA, point: int = DOT
                        ) -> np.ndarray:
    """The fixed suffix, then ``,base,name_1,c_1,...,other`` per row, as one zero-padded byte matrix.

    Numbers and names vary in width: a column slice per piece (every piece
    vectorised), with zero bytes where a row's piece is shorter than its slice;
    :func:`with_padded_suffixes` drops them.
    """
    n = len(suffix)
    encoded = [name.encode() for name in names]
    longest = max(len(e) for e in encoded)
    table = np.zeros((len(encoded), longest + 1), dtype=np.uint8)  # ",name" per feature, zero-padded
    for k, e in enumerate(encoded):
        table[k, 0] = sep
        table[k, 1:1 + len(e)] = np.frombuffer(e, dtype=np.uint8)
    numbers = [base, *(contrib[:, j] for j in range(top.shape[1])), other]
    widths = [1 + _decimal_columns(v) for v in numbers]  # ",number"
    total = suffix.shape[1] + sum(widths) + top.shape[1] * (longest + 1)
    matrix = np.empty((n, total), dtype=np.uint8)
    matrix[:, :suffix.shape[1]] = suffix
    at = suffix.shape[1]

    def number(values: np.ndarray, width: int) -> None:
        nonlocal at
        matrix[:, at] = sep
        if n > 1 and bool((values == values[0]).all()):  # the same number in every row (a tree model's base)
            _put_decimals(matrix[:1, at + 1:at + width], values[:1], point)
            matrix[1:, at + 1:at + width] = matrix[0, at + 1:at + width]
        else:
            _put_decimals(matrix[:, at + 1:at + width], values, point)
        at += width

    number(numbers[0], widths[0])
    for j in range(top.shape[1]):
        matrix[:, at:at + longest + 1] = table[top[:, j]]
        at += longest + 1
        number(numbers[1 + j], widths[1 + j])
    number(numbers[-1], widths[-1])
    return matrix


def with_padded_suffixes(kept: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """:func:`with_suffixes` for suffixes of different lengths: row i's suffix is ``padded[i]`` without its zero bytes.

    Each line is laid out in one row of a byte matrix (content, suffix, line
    ending), then the bytes that belong to the output are taken in one pass: the
    content by position (a line may hold any byte), the suffix where it is not
    zero. A block whose longest line would make the matrix much larger than the
    output is laid out in halves, so one long line costs its half, not the block.
    """
    n = len(padded)
    nl = np.flatnonzero(kept == NL)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    cr = (nl > starts) & (kept[np.maximum(nl - 1, 0)] == CR)  # lines ending in \r\n
    content = nl - starts - cr
    widest = int(content.max())
    if n > 1 and n * widest > 4 * len(kept) + (1 << 16):
        half = n // 2
        cut = int(nl[half - 1]) + 1
        return np.concatenate([with_padded_suffixes(kept[:cut], padded[:half]),
                               with_padded_suffixes(kept[cut:], padded[half:])])
    width = widest + padded.shape[1] + 2
    matrix = np.zeros((n, width), dtype=np.uint8)
    index_type = np.int32 if n * width < 2 ** 31 else np.int64
    line = content + cr + 1
    shift = np.repeat((np.arange(n, dtype=index_type) * width - starts.astype(index_type)), line)
    shift += np.arange(len(kept), dtype=index_type)
    matrix.ravel()[shift] = kept  # each whole line at the start of its row; its ending is re-written below
    matrix[:, widest:widest + padded.shape[1]] = padded
    matrix[:, -2] = CR * cr
    matrix[:, -1] = NL
    take = matrix != 0
    take[:, :widest] = np.arange(widest)[None, :] < content[:, None]
    return matrix.ravel()[take.ravel()]


def with_suffixes(kept: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """Lines (bytes, each ending in ``\\n`` or ``\\r\\n``) with row i's suffix inserted before its line ending.

    One scatter: a content byte of line i moves right by ``i * width``, a
    line-ending byte by ``(i + 1) * width``; the suffixes fill the gaps. int32
    positions and column-wise suffix writes keep the temporaries near 10x the
    block (``numpy.insert`` needs about 25x).
    """
    n, width = suffix.shape
    is_nl = kept == NL
    ending = is_nl.copy()
    ending[:-1] |= (kept[:-1] == CR) & is_nl[1:]
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


def spliced(block: bytes, ok: np.ndarray, suffix: np.ndarray, *, crlf: int | None = None) -> bytes | None:
    r"""The lines of ``block`` where ``ok``, each with its row of ``suffix`` (zero bytes dropped) before its
    line ending; None when the block's lines do not all end the same way (then use :func:`with_suffixes`
    or :func:`with_padded_suffixes`).

    ``block`` holds whole lines, each ending in its line ending (the reader's blocks do); ``suffix`` has a
    row per line kept. ``crlf``, when the caller has located the lines, is how many end in ``\r\n``
    (every ``\r\n`` of such a block is a line ending), which spares counting both endings in the block.

    Examples
    --------
    >>> suffix = np.frombuffer(b",1\0,22", dtype=np.uint8).reshape(2, 3)
    >>> spliced(b"a\nbad\nb\n", np.array([True, False, True]), suffix)
    b'a,1\nb,22\n'
    """
    n_crlf = block.count(b"\r\n") if crlf is None else crlf
    n_lines = len(ok) if crlf is not None else block.count(b"\n")
    ending = b"\n" if n_crlf == 0 else b"\r\n" if n_crlf == n_lines else None
    if ending is None:
        return None
    lines = block.split(ending)
    lines.pop()  # after the last ending
    if len(lines) != len(ok):
        return None
    if not ok.all():
        lines = list(compress(lines, ok.tolist()))
    rows = _rows(suffix, ending)
    if rows is None or len(rows) != len(lines):
        return None
    pieces = [b""] * (2 * len(lines))
    pieces[0::2] = lines
    pieces[1::2] = rows
    return b"".join(pieces)


def _rows(suffix: np.ndarray, ending: bytes) -> list[bytes] | None:
    """Each row of ``suffix`` without its zero bytes, then ``ending``; None when a row holds a line break
    (the rows are cut where ``bytes.splitlines`` finds one, so there must be exactly one a row)."""
    n, width = suffix.shape
    matrix = np.empty((n, width + len(ending)), dtype=np.uint8)
    matrix[:, :width] = suffix
    matrix[:, width:] = np.frombuffer(ending, dtype=np.uint8)
    rows = matrix[matrix != 0].tobytes().splitlines(keepends=True)
    return rows if len(rows) == n else None
