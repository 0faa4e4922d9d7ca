"""A cache of judged log lines, so that each line of a prediction log is judged once in its life.

DuckDB's judging of a line by the record rule (:meth:`churn_lib.contract.records.Rule.sql`) costs
about two CPU seconds per million lines; a cron job that checks drift every few minutes would pay it
for every line again each time. Here each log file's judged lines are kept in ``logs/.judged/``
(under the home's logs folder, beside the files), as Parquet parts written by DuckDB's ``COPY``,
up to a byte *watermark*: only whole lines (ending in a newline) are cached; a last line still
being written never is (it is counted as truncated on every read, until it is whole).

A cache belongs to one file and one way of judging it:

* its name holds the file's device and inode (a log renamed by rotation keeps its cache: a rotated
  file is immutable and judged once) and the *key*: the sha256 of the cache format, the contract's
  sha256 and the judging SQL; a change of either is a different cache. The readers judge by one SQL
  per contract (:func:`churn_lib.logs.query.judged_columns`: every column drift, performance and
  compare read), so each file has one cache per contract whoever reads it, and each reader reads only
  its columns of the parts;
* its manifest (JSON) records the watermark and the sha256 of the file's first and last 4 KiB
  before it: a file that shrank, or whose bytes before the watermark changed (replaced, truncated
  and rewritten), is judged again from the start; never a stale answer;
* its parts are immutable, each the lines of one byte range; bytes appended since are judged into a
  further part, and the two newest parts are merged while the newer is as large as the older
  (a binary counter: O(log n) parts, each line rewritten O(log n) times).

Writers hold ``.judged/.lock`` (``flock``); every file is written under a temporary name and renamed,
the manifest last, so a reader (who takes no lock) sees the old cache or the new one. A home where
the cache cannot be written, or a damaged part (DuckDB refuses it), is the caller's cue to read the
files directly (:class:`CacheError`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .._io import atomic_write, atomic_write_text
from ..contract import records as _records
from .predictions import ReadStats

log = logging.getLogger(__name__)

#: The folder of the caches, inside the logs folder.
FOLDER = ".judged"
#: The layout of a cache; a cache of another format is rebuilt, and removed when the cache is next written.
#: Format 2: one cache per file and contract, every reader's columns (format 1: one per reader).
FORMAT = 2
#: Bytes of a file hashed at its start and before its watermark, to tell a replaced file.
FINGERPRINT_BYTES = 4096
_BLOCK = 1 << 16
#: How much of a file's end the direct readers read to find its last line.
_TAIL_LIMIT = _records.MAX_LINE_BYTES + 2 * 1024


class CacheError(Exception):
    """The cache cannot serve this read (not writable, damaged); read the files directly."""


@dataclass
class _Part:
    start: int
    end: int
    name: str
    rows: int                                   # lines judged (non-blank), records and skipped ones
    records: int
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class _Manifest:
    key: str
    watermark: int = 0
    head: str = ""                              # sha256 of the first min(FINGERPRINT_BYTES, watermark) bytes
    end: str = ""                               # sha256 of the FINGERPRINT_BYTES before the watermark
    parts: list[_Part] = field(default_factory=list)


@dataclass
class Cached:
    """What :func:`update` gives: the Parquet parts holding every whole line's judgment, and the read's figures."""

    parts: list[str]
    stats: ReadStats


def key(contract_sha256: str, select: str) -> str:
    """The key of a cache: the format, the contract and the judging SQL."""
    return hashlib.sha256(f"{FORMAT}\n{contract_sha256}\n{select}".encode()).hexdigest()


def update(con: Any, paths: Sequence[Path], *, select: str, cache_key: str, folder: Path) -> Cached:
    """Bring the caches of ``paths`` up to date (judging only lines not judged before); their parts and figures.

    Parameters
    ----------
    con : duckdb connection
    paths : sequence of Path
        Existing log files.
    select : str
        The judging query over ``$files`` (a list of files): one row per non-blank line with its ``reason``
        (NULL for a record) and the columns the callers read.
    cache_key : str
        :func:`key` of the contract and ``select``.
    folder : Path
        The cache folder (``logs/.judged``).

    Returns
    -------
    Cached
        ``stats`` counts every non-blank line of ``paths`` as a direct read does (a last line without its
        newline as truncated).

    Raises
    ------
    CacheError
        The cache cannot be read or written; nothing half-written is left for a reader.
    """
    import duckdb

    stats = ReadStats(files=[str(p) for p in paths])
    parts: list[str] = []
    try:
        with _Writer(folder) as writer:
            for path in paths:
                st = os.stat(path)
                stats.bytes_read += st.st_size
                whole, tail = _watermark(path, st.st_size)
                manifest = writer.current(path, st, cache_key, whole, con)
                if manifest.watermark < whole:
                    manifest = writer.extend(con, path, st, manifest, whole, select)
                for part in manifest.parts:
                    parts.append(str(folder / part.name))
                    stats.lines += part.rows
                    stats.records += part.records
                    for why, n in part.skipped.items():
                        stats.skip(why, n)
                if tail:
                    stats.lines += 1
                    stats.skip(_records.TRUNCATED)
            writer.prune()
    except (OSError, duckdb.Error, ValueError, KeyError, TypeError) as exc:
        log.debug("judged-line cache in %s not used: %s", folder, exc)
        raise CacheError(str(exc)) from exc
    return Cached(parts, stats)


def forget(folder: Path, paths: Sequence[Path], parts: Sequence[str]) -> None:
    """Remove the caches of ``paths`` after DuckDB refused one of their ``parts``: they are judged afresh next
    time. Not when a part is gone (another process merged it away meanwhile: the cache is sound). Best effort."""
    if not all(Path(p).exists() for p in parts):
        return
    try:
        with _Writer(folder) as writer:
            for path in paths:
                st = os.stat(path)
                for manifest in folder.glob(f"{st.st_dev}-{st.st_ino}.*.json"):
                    writer.drop(manifest)
    except OSError as exc:
        log.debug("could not forget the caches in %s: %s", folder, exc)


def _watermark(path: Path, size: int) -> tuple[int, bool]:
    """(the offset after the file's last newline, whether a non-blank line follows it: a write in progress).

    The last line is judged as the direct readers judge it (``_unterminated`` in :mod:`.query`): longer than
    a line may be, it counts whatever its bytes; a byte order mark that starts the file is no part of it.
    """
    with open(path, "rb") as fh:
        pos = size
        while pos > 0:
            start = max(0, pos - _BLOCK)
            fh.seek(start)
            block = fh.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                pos = start + cut + 1
                break
            pos = start
        if size - pos >= _TAIL_LIMIT and size > _TAIL_LIMIT:  # no newline in what they read of the end
            return pos, True
        fh.seek(pos)
        tail = fh.read(size - pos)
    if pos == 0 and tail.startswith(_records.BOM):
        tail = tail[len(_records.BOM):]
    return pos, bool(tail) and not _records.blank(tail)


def _sha(path: Path, start: int, stop: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(start)
        return hashlib.sha256(fh.read(stop - start)).hexdigest()


def _fingerprints(path: Path, watermark: int) -> tuple[str, str]:
    return (_sha(path, 0, min(FINGERPRINT_BYTES, watermark)),
            _sha(path, max(0, watermark - FINGERPRINT_BYTES), watermark))


class _Writer:
    """The cache folder under its lock (taken when something is to be written): manifests read, parts written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def _lock(self) -> None:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd

    def _manifest_path(self, st: os.stat_result, cache_key: str) -> Path:
        return self.folder / f"{st.st_dev}-{st.st_ino}.{cache_key[:24]}.json"

    def _load(self, path: Path) -> _Manifest | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return _Manifest(key="")  # unreadable: rebuilt
        if raw.get("format") != FORMAT:
            return _Manifest(key="")
        return _Manifest(raw["key"], int(raw["watermark"]), raw["head"], raw["end"],
                         [_Part(**p) for p in raw["parts"]])

    def current(self, path: Path, st: os.stat_result, cache_key: str, whole: int, con: Any) -> _Manifest:
        """The valid cache of ``path`` (empty when there is none, or it is stale or damaged: then removed)."""
        where = self._manifest_path(st, cache_key)
        found = self._load(where)
        if found is None:
            return _Manifest(cache_key)
        if self._valid(path, found, cache_key, whole, con):
            return found
        self._lock()
        self.drop(where)
        return _Manifest(cache_key)

    def _valid(self, path: Path, m: _Manifest, cache_key: str, whole: int, con: Any) -> bool:
        if m.key != cache_key or m.watermark > whole or (m.head, m.end) != _fingerprints(path, m.watermark):
            return False
        if not m.parts or m.parts[0].start != 0 or m.parts[-1].end != m.watermark:
            return False
        if any(a.end != b.start for a, b in zip(m.parts, m.parts[1:])):
            return False
        import duckdb

        for part in m.parts:  # Parquet's footer holds the row count: a truncated or foreign part raises
            try:
                rows = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": str(self.folder / part.name)})
                if rows.fetchone()[0] != part.rows:
                    return False
            except duckdb.Error:
                return False
        return True

    def drop(self, manifest: Path) -> None:
        """Remove a manifest and the parts it lists (under the lock)."""
        self._lock()
        found = self._load(manifest)
        manifest.unlink(missing_ok=True)
        for part in found.parts if found else ():
            (self.folder / part.name).unlink(missing_ok=True)

    def extend(self, con: Any, path: Path, st: os.stat_result, m: _Manifest, whole: int, select: str) -> _Manifest:
        """Judge the whole lines of ``path`` past the cache's watermark into a new part; merge; write the manifest."""
        self._lock()
        fresh = self._load(self._manifest_path(st, m.key))  # another process may have extended it meanwhile
        if fresh is not None and fresh.watermark > m.watermark and self._valid(path, fresh, m.key, whole, con):
            m = fresh
            if m.watermark >= whole:
                return m
        stem = f"{st.st_dev}-{st.st_ino}.{m.key[:24]}"
        with self._chunk(path, m.watermark, whole, st.st_size) as source:
            part = self._write_part(con, stem, m.watermark, whole, select, [str(source)])
        parts, made = [*m.parts, part], [part]
        while len(parts) >= 2 and parts[-1].end - parts[-1].start >= parts[-2].end - parts[-2].start:
            parts[-2:] = [self._merge(con, stem, parts[-2], parts[-1])]
            made.append(parts[-1])
        head, end = _fingerprints(path, whole)
        out = _Manifest(m.key, whole, head, end, parts)
        atomic_write_text(self._manifest_path(st, m.key), json.dumps(
            {"format": FORMAT, "file": path.name, **{k: v for k, v in out.__dict__.items() if k != "parts"},
             "parts": [p.__dict__ for p in parts]}, indent=1) + "\n")
        for old in [*m.parts, *made]:  # merged away
            if old not in parts:
                (self.folder / old.name).unlink(missing_ok=True)
        return out

    @contextlib.contextmanager
    def _chunk(self, path: Path, start: int, stop: int, size: int) -> Iterator[Path]:
        """The file itself when the range is all of it; else a temporary copy of the range (a blank line first
        when it starts inside the file, so that a byte order mark there stays part of its line)."""
        if start == 0 and stop == size:
            yield path
            return
        tmp = self.folder / f".chunk.{os.getpid()}.tmp"
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                if start:
                    dst.write(b"\n")
                src.seek(start)
                left = stop - start
                while left:
                    block = src.read(min(left, 1 << 22))
                    if not block:
                        raise OSError(f"{path} shrank while read")
                    dst.write(block)
                    left -= len(block)
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def _write_part(self, con: Any, stem: str, start: int, stop: int, select: str, files: list[str]) -> _Part:
        name = f"{stem}.{start}-{stop}.parquet"

        def write(tmp: Path) -> None:
            con.execute(f"COPY ({select}) TO '{_literal(tmp)}' (FORMAT parquet)", {"files": files})

        atomic_write(self.folder / name, write)
        return self._counted(con, name, start, stop)

    def _merge(self, con: Any, stem: str, a: _Part, b: _Part) -> _Part:
        name = f"{stem}.{a.start}-{b.end}.parquet"
        sources = [str(self.folder / a.name), str(self.folder / b.name)]

        def write(tmp: Path) -> None:
            con.execute(f"COPY (SELECT * FROM read_parquet($f)) TO '{_literal(tmp)}' (FORMAT parquet)", {"f": sources})

        atomic_write(self.folder / name, write)
        return self._counted(con, name, a.start, b.end)

    def _counted(self, con: Any, name: str, start: int, stop: int) -> _Part:
        counts = con.execute("SELECT reason, count(*) FROM read_parquet($f) GROUP BY reason",
                             {"f": str(self.folder / name)}).fetchall()
        return _Part(start, stop, name, rows=sum(int(n) for _, n in counts),
                     records=sum(int(n) for why, n in counts if why is None),
                     skipped={str(why): int(n) for why, n in sorted(counts, key=lambda c: str(c[0])) if why is not None})

    def prune(self) -> None:
        """Remove the caches of files that are gone (a log deleted, or rotated out) and those of another format
        (an older version's), when the lock is held."""
        if self._fd is None:
            return
        alive = set()
        for p in self.folder.parent.iterdir():
            with contextlib.suppress(OSError):
                st = p.stat()
                alive.add(f"{st.st_dev}-{st.st_ino}")
        for manifest in self.folder.glob("*.json"):
            if manifest.name.split(".", 1)[0] not in alive or not (self._load(manifest) or _Manifest("")).key:
                self.drop(manifest)  # a file gone, or a cache of another format (or unreadable)
        for part in self.folder.glob("*.parquet"):  # named by no manifest: of a cache of another format
            if not (self.folder / f"{part.name.rsplit('.', 2)[0]}.json").exists():
                part.unlink(missing_ok=True)


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
