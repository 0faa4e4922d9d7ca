"""The scorer: validate and score blocks of whole lines, appending to the output and the rejects file.

:func:`score_range` scores a byte range of the file block by block. Each block's lines are located and
those with the header's number of fields parsed and checked against the model's contract (:func:`_check`:
:func:`validate`, the rules of :func:`churn_lib.contract.check_frame`); the model scores the valid rows
(:func:`_model_outputs`, on a thread of its own while the next block is checked), and :func:`_write` writes
them with their score columns (:mod:`.formatter`); every other line goes to the rejects file with its line
number and reason.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
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


def _model_outputs(scorer: scoring.Scorer, layout: Layout, features: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """What the model says of the valid rows: ``scorer.explain`` with reasons, else ``scorer.predict``."""
    if layout.explain:
        return scorer.explain(features, layout.explain)
    return scorer.predict(features)


def _write_scored(out: BinaryIO, checked: "_Checked", outputs: tuple[np.ndarray, ...], layout: Layout,
                  scorer: scoring.Scorer) -> None:
    """The valid lines, unchanged, each with its score columns before its line ending."""
    if layout.explain:
        proba, base, top, contrib, other = outputs
        suffix = suffixes(proba, (proba >= scorer.threshold).astype(int), scorer.version.encode(), sep=layout.sep,
                          point=layout.point)
        suffix = explained_suffixes(suffix, base, top, contrib, other, scorer.features, sep=layout.sep,
                                    point=layout.point)
    else:
        proba, pred = outputs
        suffix = suffixes(proba, pred, scorer.version.encode(), sep=layout.sep, point=layout.point)
    block, lines, ok = checked.block, checked.lines, checked.ok
    joined = spliced(block, ok, suffix, crlf=int(np.count_nonzero(lines.nl != lines.ends)))
    if joined is not None:
        out.write(joined)
        return
    buf = lines.buf  # lines ending in both ways
    kept = buf if checked.result.scored == lines.n else buf[np.repeat(ok, lines.nl - lines.starts + 1)]
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


@dataclass
class _Checked:
    """A block's lines located, parsed and checked: what is left is to score its valid rows and write."""

    block: bytes
    first_line: int
    lines: Lines
    ok: np.ndarray              # per line
    features: dict[str, Any]    # of the valid rows
    reasons_good: np.ndarray    # per line with the header's number of fields
    result: BlockResult


def _check(block: bytes, first_line: int, layout: Layout, scorer: scoring.Scorer) -> _Checked:
    """Locate, parse and validate the lines of one block (ending in a newline)."""
    lines = locate_lines(block, len(layout.columns), layout.sep)
    frame = _parse(block, lines, layout, scorer.contract, first_line)
    features, ok_good, reasons_good, counts = validate(frame, scorer.contract)
    ok = np.zeros(lines.n, dtype=bool)
    ok[lines.good] = ok_good
    if len(lines.good) < lines.n:
        counts["line: wrong number of fields"] += int((lines.bad_width & ~lines.empty).sum())
        counts["line: empty"] += int(lines.empty.sum())
    n_ok = int(ok.sum())
    result = BlockResult(lines=lines.n, scored=n_ok, rejected=lines.n - n_ok,
                         counts=Counter({k: v for k, v in counts.items() if v}))
    return _Checked(block, first_line, lines, ok, features, reasons_good, result)


def _write(checked: _Checked, outputs: tuple[np.ndarray, ...] | None, layout: Layout, scorer: scoring.Scorer,
           out: BinaryIO, rejects: BinaryIO) -> BlockResult:
    """Write a checked block's scored lines (given the model's ``outputs``) and its rejected ones."""
    if checked.result.scored:
        _write_scored(out, checked, outputs, layout, scorer)
    if checked.result.rejected:
        _write_rejects(rejects, checked.block, checked.lines, checked.ok, checked.reasons_good, checked.first_line,
                       layout)
    return checked.result


def score_range(path: str, start: int, end: int, layout: Layout, scorer: scoring.Scorer, out: BinaryIO,
                rejects: BinaryIO, *, first_line: int, chunk_bytes: int,
                progress: Callable[[int, BlockResult], None] | None = None) -> BlockResult:
    """Score the lines between byte offsets ``start`` and ``end`` block by block; ``progress(offset, so_far)``
    after each block. ``first_line`` is the number of the range's first line in the rejects file.

    Two blocks are in flight: while the model scores one block's valid rows on a thread of its own (its
    numpy work, LightGBM's reasons on every core, releases the GIL), this thread parses and checks the next
    block, then writes the first. The output is the same, byte for byte, as one block at a time.
    """
    total = BlockResult()
    read = 0
    pending: tuple[int, _Checked, Future | None] | None = None

    def finish(item: tuple[int, _Checked, Future | None]) -> None:
        pos, checked, job = item
        total.add(_write(checked, job.result() if job is not None else None, layout, scorer, out, rejects))
        if progress is not None:
            progress(pos, total)

    with open(path, "rb") as fh, ThreadPoolExecutor(1, thread_name_prefix="churn-score") as model:
        for pos, block in blocks(fh, start, end, chunk_bytes):
            checked = _check(block, first_line + read, layout, scorer)
            read += checked.result.lines
            job = model.submit(_model_outputs, scorer, layout, checked.features) if checked.result.scored else None
            if pending is not None:
                finish(pending)
            pending = (pos, checked, job)
        if pending is not None:
            finish(pending)
    return total
