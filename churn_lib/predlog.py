"""The prediction log: append one JSON line per prediction; read logs back
robustly.

Format (the lab's, one JSON object per line in ``logs/predictions.log``)::

    {"request_id": .., "model_version": <model file>, "prediction": 0|1,
     "probability": .., "latency_ms": .., "features": {<5 features>}, "ts": <unix s>,
     "threshold": .., "version": <label>}

Writers append each line with a single ``write`` on an ``O_APPEND`` descriptor
so that several workers never tear or interleave lines. Readers skip
malformed, truncated or foreign lines and count them (:class:`ReadStats`);
rotated files (``predictions.log.1`` ...) and per-worker files
(``predictions-*.log``) are read as one stream. :func:`iter_records` yields
dicts (small logs); :func:`iter_batches` streams numpy column batches in bounded
memory and :func:`read_tail` reads only the end of the files, for drift.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import msgspec
import numpy as np

from . import schema
from ._files import append_bytes
from .home import Home

#: The lab's keys, in order, then what the product adds.
LAB_KEYS: tuple[str, ...] = ("request_id", "model_version", "prediction", "probability", "latency_ms",
                             "features", "ts")
KEYS: tuple[str, ...] = LAB_KEYS + ("threshold", "version")


def format_line(record: dict[str, Any]) -> bytes:
    """One log line (compact JSON, newline-terminated)."""
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def append(record: dict[str, Any], *, path: Path, fsync: bool = False) -> None:
    """Append one record with a single ``write()``; raises ``OSError`` when it cannot."""
    append_bytes(path, format_line(record), fsync=fsync)


def append_many(records: Iterable[dict[str, Any]], *, path: Path, fsync: bool = False) -> None:
    """Append several records, one line each, with a single ``write()`` (see :func:`write_lines`)."""
    write_lines(b"".join(format_line(r) for r in records), path=path, fsync=fsync)


def write_lines(data: bytes, *, path: Path, fsync: bool = False) -> None:
    """Append lines already made by :func:`format_line` with a single ``write()`` on an
    ``O_APPEND`` descriptor: a batch lands whole, its lines unmixed with other writers';
    raises ``OSError`` when it cannot."""
    append_bytes(path, data, fsync=fsync)


def log_files(*, home: Home | str | None = None) -> list[Path]:
    """The prediction log files of a home, oldest first (rotated, then per worker, then current)."""
    home = Home.resolve(home)
    folder = home.logs_dir
    if not folder.is_dir():
        return []
    rotated = sorted((p for p in folder.glob("predictions.log.*") if p.suffix.lstrip(".").isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    workers = sorted(folder.glob("predictions-*.log"))
    current = [home.predictions_log] if home.predictions_log.exists() else []
    return rotated + workers + current


@dataclass
class ReadStats:
    """How many lines a read saw, kept and skipped (and why), in which files."""

    lines: int = 0
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    bytes_read: int = 0

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "bytes_read": self.bytes_read, "lines": self.lines,
                "records": self.records, "skipped_total": self.skipped_total,
                "skipped": dict(sorted(self.skipped.items()))}

    def summary(self) -> str:
        """One line: what was read and what was skipped, e.g. for the CLI."""
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        return (f"read {self.lines} lines from {len(self.files)} file(s): {self.records} records"
                + (f", {self.skipped_total} skipped ({skipped})" if self.skipped_total else ", none skipped"))


def _valid(rec: Any) -> str | None:
    """None when ``rec`` is a usable prediction record, else the reason it is not."""
    if not isinstance(rec, dict):
        return "not an object"
    feats = rec.get("features")
    if not isinstance(feats, dict):
        return "no features"
    for name in schema.NUMERIC:
        v = feats.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "bad feature value"
    for name in schema.CATEGORICAL:
        if not isinstance(feats.get(name), str):
            return "bad feature value"
    if not isinstance(rec.get("ts"), (int, float)):
        return "no timestamp"
    return None


def iter_records(paths: Iterable[Path], stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Yield valid records from ``paths`` in order; count the rest in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        stats.files.append(str(path))
        with open(path, "rb") as fh:
            for raw in fh:
                stats.lines += 1
                if not raw.endswith(b"\n"):
                    stats.skip("truncated")
                    continue
                try:
                    rec = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    stats.skip("malformed")
                    continue
                reason = _valid(rec)
                if reason:
                    stats.skip(reason)
                    continue
                stats.records += 1
                yield rec


# --- fast columnar reading (drift) -------------------------------------------
#
# A log of a million lines is read in chunks of whole lines. msgspec decodes a
# chunk against the record's schema in C (several times faster than json.loads
# per line, then pandas.json_normalize); only a chunk holding a bad line is
# decoded again line by line, to count and classify what it skips. Memory is
# one chunk plus what the caller keeps.

#: Bytes read per chunk: large enough to amortise per-chunk work, small enough
#: that a chunk with a bad line is cheap to redo line by line.
CHUNK_BYTES = 1 << 20
#: A longer "line" is not a prediction (the API's records are ~300 bytes); it
#: is skipped without being held in memory whole.
MAX_LINE_BYTES = 1 << 20

_Features = msgspec.defstruct(
    "_Features", [(n, float) for n in schema.NUMERIC] + [(c, str) for c in schema.CATEGORICAL],
    gc=False)
_Record = msgspec.defstruct(
    "_Record", [("features", _Features), ("ts", float), ("probability", float),
                ("model_version", str | None, None), ("version", str | None, None)],
    gc=False)
_DECODER = msgspec.json.Decoder(_Record)


@dataclass
class Batch:
    """Columns of consecutive valid records, oldest first.

    ``model`` is the serving model as logged: the model file name
    (``model_version``; the lab's lines have only this), else the version label.
    """

    model: np.ndarray                      # object: str
    ts: np.ndarray                         # float64, Unix seconds
    probability: np.ndarray                # float64
    numeric: dict[str, np.ndarray]         # float64 per numeric feature
    categorical: dict[str, np.ndarray]     # object (str) per categorical feature

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> "Batch":
        """The rows at ``index`` (a boolean mask, integer positions or a slice)."""
        return Batch(self.model[index], self.ts[index], self.probability[index],
                     {k: v[index] for k, v in self.numeric.items()},
                     {k: v[index] for k, v in self.categorical.items()})

    @classmethod
    def empty(cls) -> "Batch":
        return cls(np.empty(0, dtype=object), np.empty(0), np.empty(0),
                   {n: np.empty(0) for n in schema.NUMERIC},
                   {c: np.empty(0, dtype=object) for c in schema.CATEGORICAL})

    @classmethod
    def concat(cls, batches: Sequence["Batch"]) -> "Batch":
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(np.concatenate([b.model for b in batches]), np.concatenate([b.ts for b in batches]),
                   np.concatenate([b.probability for b in batches]),
                   {n: np.concatenate([b.numeric[n] for b in batches]) for n in schema.NUMERIC},
                   {c: np.concatenate([b.categorical[c] for b in batches]) for c in schema.CATEGORICAL})


def _reason(line: bytes) -> str:
    """Why a line that the fast decoder refused is not a usable record."""
    if not line.strip():
        return "empty line"
    if len(line) > MAX_LINE_BYTES:
        return "too long"
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "malformed"
    reason = _valid(rec)
    if reason:
        return reason
    p = rec.get("probability")
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        return "bad probability"
    if not any(isinstance(rec.get(k), str) for k in ("model_version", "version")):
        return "no model"
    return "bad value"  # e.g. a number out of float range, a lone surrogate


def _parse(buf: bytes, stats: ReadStats, end: int | None = None) -> Batch:
    """Decode ``buf[:end]`` (whole lines, each ending in a newline) into a :class:`Batch`."""
    end = len(buf) if end is None else end
    n_lines = buf.count(b"\n", 0, end)
    stats.lines += n_lines
    stats.bytes_read += end
    try:
        recs = _DECODER.decode_lines(memoryview(buf)[:end])  # no copy
        # decode_lines skips blank lines and accepts two objects on one line:
        # only an exact count proves one record per line.
        ok = len(recs) == n_lines
    except msgspec.DecodeError:
        ok = False
    if not ok:
        recs = []
        for line in buf[:end].split(b"\n")[:-1]:
            try:
                recs.append(_DECODER.decode(line))
            except msgspec.DecodeError:
                stats.skip(_reason(line))
    m = len(recs)
    if m == 0:
        return Batch.empty()
    feats = list(map(attrgetter("features"), recs))
    numeric = {n: np.fromiter(map(attrgetter(n), feats), np.float64, m) for n in schema.NUMERIC}
    categorical = {c: np.fromiter(map(attrgetter(c), feats), object, m) for c in schema.CATEGORICAL}
    model = np.fromiter(map(attrgetter("model_version"), recs), object, m)
    ts = np.fromiter(map(attrgetter("ts"), recs), np.float64, m)
    proba = np.fromiter(map(attrgetter("probability"), recs), np.float64, m)
    if None in model.tolist():
        labels = np.fromiter(map(attrgetter("version"), recs), object, m)
        model = np.where(model == None, labels, model)  # noqa: E711 - elementwise
    checks = (
        ("bad feature value", ~np.logical_and.reduce([np.isfinite(v) for v in numeric.values()])),
        ("no timestamp", ~np.isfinite(ts)),
        ("bad probability", ~((proba >= 0.0) & (proba <= 1.0))),
        ("no model", model == None),  # noqa: E711 - elementwise
    )
    bad = np.zeros(m, dtype=bool)
    for reason, mask in checks:
        mask = mask & ~bad
        if mask.any():
            stats.skip(reason, int(mask.sum()))
            bad |= mask
    batch = Batch(model, ts, proba, numeric, categorical)
    if bad.any():
        batch = batch.take(~bad)
    stats.records += len(batch)
    return batch


def iter_batches(paths: Iterable[Path], *, stats: ReadStats | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> Iterator[Batch]:
    """Yield the valid records of ``paths``, read in order, as column batches.

    Memory is one chunk whatever the size of the files. A last line without a
    newline (a write in progress, or a crash) is counted as ``truncated``; a
    longer line than :data:`MAX_LINE_BYTES` as ``too long``, without being held.
    """
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        stats.files.append(str(path))
        with open(path, "rb") as fh:
            rest, overlong = b"", False
            while block := fh.read(chunk_bytes):
                if not rest and not overlong:  # the usual case: no copy of the chunk
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        if cut < len(block):  # the unfinished last line is read again with the next chunk
                            fh.seek(cut - len(block), os.SEEK_CUR)
                        batch = _parse(block, stats, cut)
                        if len(batch):
                            yield batch
                        continue
                buf = rest + block
                if overlong:  # drop the rest of an over-long line
                    nl = buf.find(b"\n")
                    if nl < 0:
                        rest = b""
                        continue
                    stats.lines += 1
                    stats.skip("too long")
                    buf, overlong = buf[nl + 1:], False
                cut = buf.rfind(b"\n") + 1
                rest = buf[cut:]
                if len(rest) > MAX_LINE_BYTES:
                    rest, overlong = b"", True
                if cut:
                    batch = _parse(buf[:cut], stats)
                    if len(batch):
                        yield batch
            if overlong or rest:  # an unterminated last line, however long: a write in progress
                stats.lines += 1
                stats.skip("truncated")


def _chunks_backward(path: Path, stats: ReadStats, chunk_bytes: int) -> Iterator[bytes]:
    """Whole lines of ``path``, newest chunk first (each chunk's lines in file order)."""
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        pending, first = b"", True
        skipping: str | None = None  # a line being dropped, and why; its start is before what was read
        while pos > 0:
            size = min(chunk_bytes, pos)
            pos -= size
            fh.seek(pos)
            chunk = fh.read(size)
            data = chunk + pending
            pending = b""
            if first:
                first = False
                if not data.endswith(b"\n"):  # an unterminated last line: a write in progress
                    skipping = "truncated"
            if skipping:
                cut = data.rfind(b"\n") + 1
                if cut == 0 and pos > 0:
                    continue
                stats.lines += 1
                stats.skip(skipping)
                data, skipping = data[:cut], None
            if pos > 0:  # the first line may have begun before this chunk
                nl = chunk.find(b"\n")  # (not in the pending fragment: its newline ends it)
                if nl < 0:
                    pending = data
                    if len(pending) > MAX_LINE_BYTES:
                        pending, skipping = b"", "too long"
                    continue
                pending, data = data[:nl + 1], data[nl + 1:]
            if data:
                yield data


def read_tail(paths: Sequence[Path], n_rows: int, *, select: Callable[[Batch], np.ndarray] | None = None,
              stats: ReadStats | None = None, chunk_bytes: int = CHUNK_BYTES) -> Batch:
    """The ``n_rows`` most recent valid records of ``paths`` (those ``select`` keeps), oldest first.

    Files are read backwards from their end, newest file first (by mtime), and
    a file is not opened once ``n_rows`` records newer than its last change are
    in hand: time and memory follow ``n_rows``, not the size of the log. Rows
    of several files (one per worker) are merged by timestamp.
    """
    stats = stats if stats is not None else ReadStats()
    if n_rows < 1:
        raise ValueError("n_rows must be positive")
    by_mtime = sorted(((p.stat().st_mtime, p) for p in paths if p.exists()), key=lambda t: -t[0])
    parts: list[Batch] = []
    newest: np.ndarray = np.empty(0)  # the n_rows largest timestamps in hand
    for mtime, path in by_mtime:
        if len(newest) >= n_rows and newest.min() > mtime + 1.0:
            continue  # every line of this file is older than the rows in hand
        stats.files.append(str(path))
        mine: list[Batch] = []
        have = 0
        for buf in _chunks_backward(path, stats, chunk_bytes):
            batch = _parse(buf, stats)
            if select is not None and len(batch):
                batch = batch.take(select(batch))
            if len(batch):
                mine.append(batch)
                have += len(batch)
            if have >= n_rows:
                break
        if mine:
            parts.extend(mine)
            newest = np.sort(np.concatenate([newest] + [b.ts for b in mine]))[-n_rows:]
    return _latest(Batch.concat(parts[::-1]), n_rows)  # in file order, which rows with equal timestamps keep


def _latest(batch: Batch, n_rows: int) -> Batch:
    order = np.argsort(batch.ts, kind="stable")
    return batch.take(order[-n_rows:]) if len(batch) else batch


def latest(batches: Iterable[Batch], n_rows: int) -> Batch:
    """The ``n_rows`` most recent rows (by timestamp) of a stream of batches, oldest first.

    Memory stays below twice ``n_rows`` rows plus one batch, whatever the stream's length.
    """
    if n_rows < 1:
        raise ValueError("n_rows must be positive")
    kept: list[Batch] = []
    size = 0
    for batch in batches:
        kept.append(batch)
        size += len(batch)
        if size >= 2 * n_rows:
            kept, size = [_latest(Batch.concat(kept), n_rows)], n_rows
    return _latest(Batch.concat(kept), n_rows)
