"""The prediction log: append one JSON line per prediction; read logs back
robustly.

Format (the lab's, one JSON object per line in ``logs/predictions.log``)::

    {"request_id": .., "model_version": <model file>, "prediction": 0|1,
     "probability": .., "latency_ms": .., "features": {<the contract's features>}, "ts": <unix s>,
     "threshold": .., "version": <label>[, "id": {<id column>: ..}][, "role": "challenger"]}

A challenger's shadow answer to a request is a line of its own with the same
keys (``request_id`` and ``id`` the champion's, ``model_version``,
``threshold``, ``prediction``, ``probability`` and ``latency_ms`` its own)
and a last key ``"role": "challenger"``; the champion's line has no role.

Every record is built by :func:`record` (the API, the simulator), so the keys
and their order are the same wherever a line comes from. Features are the
normalised values the model scored (None where a value was missing and the
model filled it in).

Writers append each line with a single ``write`` on an ``O_APPEND`` descriptor
so that several workers never tear or interleave lines. Readers keep the
lines the record rule of the contract accepts (:mod:`churn_lib.contract.records`)
and count the others by reason (:class:`ReadStats`);
rotated files (``predictions.log.1`` ...) and per-worker files
(``predictions-*.log``) are read as one stream. :func:`iter_records` yields
dicts (small logs); :func:`read_tail` reads only the end of the files into
numpy column batches, for a small drift window; larger windows and every other
read of the whole log go through DuckDB (:mod:`churn_lib.logs.query`).
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

from .. import contract as _contract
from ..contract import records as _records
from .._io import append_bytes, rotated
from ..home import Home

#: The lab's keys, in order, then what the product adds (``id`` only for contracts with an id).
LAB_KEYS: tuple[str, ...] = ("request_id", "model_version", "prediction", "probability", "latency_ms",
                             "features", "ts")
KEYS: tuple[str, ...] = LAB_KEYS + ("threshold", "version")
ID_KEY = "id"
#: The key of a challenger's line (:data:`churn_lib.contract.records.CHALLENGER`); a champion's line has none.
ROLE_KEY = "role"


def record(*, request_id: str, model_file: str, version: str, threshold: float, probability: float,
           features: dict[str, Any], latency_ms: float, ts: float,
           ids: dict[str, Any] | None = None, explanation: dict[str, Any] | None = None,
           role: str | None = None) -> dict[str, Any]:
    """One prediction record, the lab's keys in order, then ``threshold``, ``version`` (then ``explanation``
    of an explained prediction, ``id``, and ``role`` of a challenger's line: ``"challenger"``).

    ``probability`` is rounded to 6 decimals (the lab's), ``prediction`` is
    ``probability >= threshold`` on the unrounded value.
    """
    rec = {"request_id": request_id, "model_version": model_file, "prediction": int(probability >= threshold),
           "probability": round(probability, 6), "latency_ms": latency_ms, "features": features, "ts": ts,
           "threshold": threshold, "version": version}
    if explanation is not None:
        rec["explanation"] = explanation
    if ids:
        rec[ID_KEY] = ids
    if role is not None:
        rec[ROLE_KEY] = role
    return rec


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
    workers = sorted(folder.glob("predictions-*.log"))
    current = [home.predictions_log] if home.predictions_log.exists() else []
    return rotated(home.predictions_log) + workers + current


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


def iter_records(paths: Iterable[Path], stats: ReadStats | None = None, *,
                 contract: _contract.Contract | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records (by :mod:`churn_lib.contract.records`' rule for ``contract``, default the lab's) of
    ``paths`` in order as dicts; count the rest in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    rule = _records.rule(contract or _contract.lab())
    for path in paths:
        stats.files.append(str(path))
        with open(path, "rb") as fh:
            for k, raw in enumerate(fh):
                if k == 0 and raw.startswith(_records.BOM):
                    raw = raw[len(_records.BOM):]
                if _records.blank(raw):
                    continue
                stats.lines += 1
                if not raw.endswith(b"\n"):
                    stats.skip(_records.TRUNCATED)
                    continue
                reason = rule.judge(raw)
                if reason:
                    stats.skip(reason)
                    continue
                stats.records += 1
                yield json.loads(raw.strip(_records.WHITESPACE))


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


class Decoder:
    """Decodes log lines of one contract's features into column batches (msgspec, in C).

    The record struct is :meth:`churn_lib.contract.records.Rule.struct`: a line
    decodes exactly when it passes the rule's field checks (numbers as floats,
    booleans as booleans, categories as text, null where the model fills values
    in). Build with :func:`decoder` (cached per contract).
    """

    def __init__(self, contract: _contract.Contract) -> None:
        self.contract = contract
        self.rule = _records.rule(contract)
        self.record_struct = self.rule.struct()
        self.decoder = msgspec.json.Decoder(self.record_struct)
        self.numeric = [(f"f{k}", f.name) for k, f in enumerate(contract.features) if f.is_numeric]
        self.categorical = [(f"f{k}", f.name) for k, f in enumerate(contract.features) if not f.is_numeric]

    def empty(self) -> "Batch":
        return Batch(np.empty(0, dtype=object), np.empty(0), np.empty(0),
                     {name: np.empty(0) for _, name in self.numeric},
                     {name: np.empty(0, dtype=object) for _, name in self.categorical})


_DECODERS: dict[str, Decoder] = {}


def decoder(contract: _contract.Contract | None = None) -> Decoder:
    """The :class:`Decoder` of a contract's log lines (default the lab's), built once per contract."""
    contract = contract or _contract.lab()
    key = contract.sha256()
    found = _DECODERS.get(key)
    if found is None:
        found = _DECODERS[key] = Decoder(contract)
    return found


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
    def empty(cls, dec: "Decoder | None" = None) -> "Batch":
        """No rows, with the columns of ``dec``'s contract (default the lab's)."""
        return (dec or decoder()).empty()

    @classmethod
    def concat(cls, batches: Sequence["Batch"], dec: "Decoder | None" = None) -> "Batch":
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty(dec)
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        return cls(np.concatenate([b.model for b in batches]), np.concatenate([b.ts for b in batches]),
                   np.concatenate([b.probability for b in batches]),
                   {n: np.concatenate([b.numeric[n] for b in batches]) for n in first.numeric},
                   {c: np.concatenate([b.categorical[c] for b in batches]) for c in first.categorical})


def _plain(buf: bytes, end: int) -> bool:
    """Whether every line of ``buf[:end]`` is UTF-8, short enough and has few enough brackets for the rule: what
    msgspec does not check (in the keys it skips)."""
    try:
        str(memoryview(buf)[:end], "utf-8")
    except UnicodeDecodeError:
        return False
    if end > _records.MAX_LINE_BYTES:
        ends = np.flatnonzero(np.frombuffer(buf, np.uint8, count=end) == 10)
        if int(np.diff(ends, prepend=-1).max(initial=0)) > _records.MAX_LINE_BYTES:
            return False
    if buf.count(b"{", 0, end) + buf.count(b"[", 0, end) <= _records.MAX_CONTAINERS:
        return True
    data = np.frombuffer(buf, np.uint8, count=end)
    starts = np.r_[0, np.flatnonzero(data == 10)[:-1] + 1]
    brackets = ((data == 123) | (data == 91)).astype(np.int32)
    return int(np.add.reduceat(brackets, starts).max()) <= _records.MAX_CONTAINERS


def _decode(buf: bytes, end: int, stats: ReadStats, dec: Decoder) -> list[Any]:
    """The records of the whole lines ``buf[:end]``; lines that are not records are counted in ``stats``."""
    n_lines = buf.count(b"\n", 0, end)
    if _plain(buf, end):
        try:
            recs = dec.decoder.decode_lines(memoryview(buf)[:end])  # no copy
            # decode_lines skips blank lines and accepts two objects on one line:
            # only an exact count proves one record per line.
            if len(recs) == n_lines:
                stats.lines += n_lines
                return recs
        except msgspec.DecodeError:
            pass
    recs = []
    for line in buf[:end].split(b"\n")[:-1]:
        if _records.blank(line):
            continue
        stats.lines += 1
        reason = dec.rule.judge(line)
        if reason is None:
            try:
                recs.append(dec.decoder.decode(line.strip(_records.WHITESPACE)))
                continue
            except msgspec.DecodeError:  # the struct is derived from the rule: tests keep them in step
                reason = _records.MALFORMED
        stats.skip(reason)
    return recs


def _parse(buf: bytes, stats: ReadStats, end: int | None = None, dec: Decoder | None = None) -> Batch:
    """Decode ``buf[:end]`` (whole lines, each ending in a newline) into a :class:`Batch`."""
    dec = dec or decoder()
    end = len(buf) if end is None else end
    stats.bytes_read += end
    recs = _decode(buf, end, stats, dec)
    m = len(recs)
    if m == 0:
        return dec.empty()
    feats = list(map(attrgetter("features"), recs))
    numeric = {}
    for attr, name in dec.numeric:
        values = list(map(attrgetter(attr), feats))
        try:
            numeric[name] = np.fromiter(values, np.float64, m)
        except TypeError:  # None where the model filled a value in
            numeric[name] = np.array(values, dtype=np.float64)
    categorical = {name: np.fromiter(map(attrgetter(attr), feats), object, m) for attr, name in dec.categorical}
    model = np.fromiter(map(attrgetter("model_version"), recs), object, m)
    ts = np.fromiter(map(attrgetter("ts"), recs), np.float64, m)
    proba = np.fromiter(map(attrgetter("probability"), recs), np.float64, m)
    if None in model.tolist():
        labels = np.fromiter(map(attrgetter("version"), recs), object, m)
        model = np.where(model == None, labels, model)  # noqa: E711 - elementwise
    batch = Batch(model, ts, proba, numeric, categorical)
    # the struct checked every field; what is left of the rule: a model file or a version label is given
    bad = model == None  # noqa: E711 - elementwise
    if bad.any():
        stats.skip(_records.NO_MODEL, int(bad.sum()))
        batch = batch.take(~bad)
    stats.records += len(batch)
    return batch


def _chunks_backward(path: Path, stats: ReadStats, chunk_bytes: int) -> Iterator[bytes]:
    """Whole lines of ``path``, newest chunk first (each chunk's lines in file order).

    An unterminated last line (a write in progress) is counted as truncated and
    a line longer than the rule allows as malformed, neither held in memory.
    """
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        pending, first = b"", True
        skipping: str | None = None  # a line being dropped, and why; its start is before what was read
        dropped_blank = True  # whether what was dropped of it so far is whitespace only
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
                    skipping = _records.TRUNCATED
            if skipping:
                cut = data.rfind(b"\n") + 1
                dropped_blank = dropped_blank and _records.blank(data[cut:])
                if cut == 0 and pos > 0:
                    continue
                if not dropped_blank:
                    stats.lines += 1
                    stats.skip(skipping)
                data, skipping, dropped_blank = data[:cut], None, True
            if pos > 0:  # the first line may have begun before this chunk
                nl = chunk.find(b"\n")  # (not in the pending fragment: its newline ends it)
                if nl < 0:
                    pending = data
                    if len(pending.strip(_records.WHITESPACE)) > _records.MAX_LINE_BYTES:
                        pending, skipping, dropped_blank = b"", _records.MALFORMED, False
                    continue
                pending, data = data[:nl + 1], data[nl + 1:]
            if pos == 0 and data.startswith(_records.BOM):
                data = data[len(_records.BOM):]
            if data:
                yield data


def read_tail(paths: Sequence[Path], n_rows: int, *, select: Callable[[Batch], np.ndarray] | None = None,
              stats: ReadStats | None = None, chunk_bytes: int = CHUNK_BYTES, dec: Decoder | None = None) -> Batch:
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
            batch = _parse(buf, stats, dec=dec)
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
    return _latest(Batch.concat(parts[::-1], dec), n_rows)  # in file order, which rows with equal timestamps keep


def _latest(batch: Batch, n_rows: int) -> Batch:
    order = np.argsort(batch.ts, kind="stable")
    return batch.take(order[-n_rows:]) if len(batch) else batch
