"""The scorer: validate and score blocks of whole lines, appending to the output and the rejects file.

:func:`score_block` parses the lines of a block that have the header's number
of fields, checks them against the model's contract (:func:`validate`, the
rules of :func:`churn_lib.contract.check_frame`), scores the valid ones and
writes them with their score columns (:mod:`.formatter`); every other line
goes to the rejects file with its line number and reason.
:func:`score_range` does it for a byte range of the file, block by block.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd

from ... import contract as _contract
from ... import scoring
from ...data.csv import read_options
from ...exceptions import DataError
from .formatter import explained_suffixes, spliced, suffixes, with_padded_suffixes, with_suffixes
from .layout import QUOTE, Layout
from .reader import Lines, blocks, locate_lines


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


@dataclass
class BlockResult:
    """Lines read, scored and rejected (with the count per rule) in a block, a range or a partition."""

    lines: int = 0
    scored: int = 0
    rejected: int = 0
    counts: Counter = field(default_factory=Counter)

    def add(self, other: "BlockResult") -> None:
        self.lines += other.lines
        self.scored += other.scored
        self.rejected += other.rejected
        self.counts.update(other.counts)


def _parse(block: bytes, lines: Lines, layout: Layout, contract: _contract.Contract, first_line: int
           ) -> pd.DataFrame:
    """The features of the lines with the header's number of fields, as the contract reads them (a boolean
    feature pandas would type as text is read as ``category``, :func:`_text_flags`)."""
    # Lines with the wrong number of fields never reach the parser (pandas would silently cut or pad them).
    parse_bytes = (block if not lines.bad_width.any()
                   else lines.buf[np.repeat(~lines.bad_width, lines.nl - lines.starts + 1)].tobytes())
    options = read_options(contract, contract.feature_names)
    options["dtype"] = ({f.name: "category" for f in contract.categorical}
                        | dict.fromkeys(_text_flags(block, lines, layout, contract, options["na_values"]), "category"))
    frame = pd.read_csv(io.BytesIO(parse_bytes), header=None, names=list(layout.columns),
                        sep=layout.dialect.sep, decimal=layout.dialect.decimal,
                        usecols=list(contract.feature_names), index_col=False, skip_blank_lines=False,
                        encoding="utf-8", encoding_errors="replace", low_memory=False, **options)
    n_good = lines.n - int(lines.bad_width.sum())
    if len(frame) != n_good:
        raise DataError(f"lines {first_line}..{first_line + lines.n - 1} of the input did not parse as {n_good} "
                        "rows; line breaks inside quoted fields are not supported", line=first_line)
    return frame


#: What pandas' parser might read as a number or a boolean: a digit, ``inf``/``nan`` spelled any way, or its
#: default boolean words (``True``, ``false``, ...).
_NUMBER_LIKE = re.compile(r"[0-9]|inf|nan|^\s*(true|false)\s*$", re.IGNORECASE)


def _text_flags(block: bytes, lines: Lines, layout: Layout, contract: _contract.Contract,
                na_values: dict[str, list[str]]) -> list[str]:
    """The boolean features that pandas will type as text in this block, told from its first parsed line.

    Without a dtype, pandas types a column as a number or a boolean only when every value parses as one;
    one value that cannot (``Yes``) makes it text. So when the first line's value is neither missing nor
    number-like, the column is text, and reading it as ``category`` gives the same strings (hashed in C,
    the few spellings checked once instead of every row). Others keep pandas' own typing; a block with
    quotes is not looked into (its fields are not cut at every separator)."""
    if not len(lines.good) or QUOTE in block:
        return []
    first = lines.good[0]
    fields = block[lines.starts[first]:lines.ends[first]].split(layout.dialect.sep.encode())
    out = []
    for f in contract.features:
        if f.type != _contract.BOOLEAN:
            continue
        text = fields[layout.columns.index(f.name)].decode("utf-8", "replace")
        if text not in na_values[f.name] and not _NUMBER_LIKE.search(text):
            out.append(f.name)
    return out


def _write_scored(out: BinaryIO, block: bytes, lines: Lines, ok: np.ndarray, n_ok: int, features: dict[str, Any],
                  layout: Layout, scorer: scoring.Scorer) -> None:
    """The valid lines, unchanged, each with its score columns before its line ending."""
    if layout.explain:
        proba, base, top, contrib, other = scorer.explain(features, layout.explain)
        suffix = suffixes(proba, (proba >= scorer.threshold).astype(int), scorer.version.encode(), sep=layout.sep,
                          point=layout.point)
        suffix = explained_suffixes(suffix, base, top, contrib, other, scorer.features, sep=layout.sep,
                                    point=layout.point)
    else:
        proba, pred = scorer.predict(features)
        suffix = suffixes(proba, pred, scorer.version.encode(), sep=layout.sep, point=layout.point)
    joined = spliced(block, ok, suffix, crlf=int(np.count_nonzero(lines.nl != lines.ends)))
    if joined is not None:
        out.write(joined)
        return
    buf = lines.buf  # lines ending in both ways
    kept = buf if n_ok == lines.n else buf[np.repeat(ok, lines.nl - lines.starts + 1)]
    out.write((with_padded_suffixes(kept, suffix) if layout.explain else with_suffixes(kept, suffix)).tobytes())


def _write_rejects(rejects: BinaryIO, block: bytes, lines: Lines, ok: np.ndarray, reasons_good: np.ndarray,
                   first_line: int, layout: Layout) -> None:
    """``line,"reason",<the line as read>`` for every line that was not scored (in the input's separator)."""
    reasons = np.full(lines.n, "", dtype=object)
    reasons[lines.good] = reasons_good
    out = []
    for i in np.flatnonzero(~ok).tolist():
        reason = reasons[i] or ("empty line" if lines.empty[i] else
                                f"has {lines.width[i]} fields, the header has {len(layout.columns)}")
        quoted = '"' + reason.replace('"', '""') + '"'
        out.append(b"%d%c%s%c%s%s" % (first_line + i, layout.sep, quoted.encode(), layout.sep,
                                      block[lines.starts[i]:lines.ends[i]], layout.newline))
    rejects.write(b"".join(out))


def score_block(block: bytes, first_line: int, layout: Layout, scorer: scoring.Scorer,
                out: BinaryIO, rejects: BinaryIO) -> BlockResult:
    """Validate and score one block of whole lines (ending in a newline); write both outputs.

    Lines are located with numpy (one pass over the bytes); valid lines are
    copied to ``out`` unchanged with their score columns inserted before
    each line ending (:func:`.formatter.spliced`), so no row is re-formatted.
    """
    lines = locate_lines(block, len(layout.columns), layout.sep)
    good = lines.good
    frame = _parse(block, lines, layout, scorer.contract, first_line)
    features, ok_good, reasons_good, counts = validate(frame, scorer.contract)
    ok = np.zeros(lines.n, dtype=bool)
    ok[good] = ok_good
    if len(good) < lines.n:
        counts["line: wrong number of fields"] += int((lines.bad_width & ~lines.empty).sum())
        counts["line: empty"] += int(lines.empty.sum())
    n_ok = int(ok.sum())
    result = BlockResult(lines=lines.n, scored=n_ok, rejected=lines.n - n_ok,
                         counts=Counter({k: v for k, v in counts.items() if v}))
    if result.scored:
        _write_scored(out, block, lines, ok, n_ok, features, layout, scorer)
    if result.rejected:
        _write_rejects(rejects, block, lines, ok, reasons_good, first_line, layout)
    return result


def score_range(path: str, start: int, end: int, layout: Layout, scorer: scoring.Scorer, out: BinaryIO,
                rejects: BinaryIO, *, first_line: int, chunk_bytes: int,
                progress: Callable[[int, BlockResult], None] | None = None) -> BlockResult:
    """Score the lines between byte offsets ``start`` and ``end`` block by block; ``progress(offset, so_far)``
    after each block. ``first_line`` is the number of the range's first line in the rejects file."""
    total = BlockResult()
    with open(path, "rb") as fh:
        for pos, block in blocks(fh, start, end, chunk_bytes):
            done = score_block(block, first_line + total.lines, layout, scorer, out, rejects)
            total.add(done)
            if progress is not None:
                progress(pos, total)
    return total
