"""Private base helpers: atomic writes, appends that never tear, hashing, and the one clock.

Every write of the project goes to a temporary file in the same folder, is
flushed to disk, then renamed over the target, so a reader (or a crash) only
ever sees the old or the new content (:func:`atomic_write`, and
:func:`atomic_file` for writers that want a file handle). Appends that several
processes share go through :func:`append_bytes`: one ``write()`` on an
``O_APPEND`` descriptor.

A writer that learns the final name only later (the registry names a model
under its lock) writes with :func:`incoming` and renames with :func:`commit`.
Both ways, a file gets the mode the umask gives a new file, never ``mkstemp``'s 0600.

Times: :func:`utc_now` is the one timestamp format of every record the project
writes (``2026-12-01T20:09:24.123456Z``), :func:`iso` renders Unix seconds the
same way, and :func:`file_stamp` is the compact form used in file names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Iterator

#: The timestamp format of every record (ISO 8601, UTC, microseconds).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    """The current time, in UTC (the one clock of the project)."""
    return datetime.now(timezone.utc)


def utc_now() -> str:
    """The current time as a record timestamp, e.g. ``2026-12-01T20:09:24.123456Z``."""
    return now().strftime(TIMESTAMP_FORMAT)


def iso(ts: float | None) -> str | None:
    """Unix seconds as a record timestamp (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime(TIMESTAMP_FORMAT)


def file_stamp(when: datetime | None = None, *, micro: bool = False) -> str:
    """A timestamp for file names: ``20261201_200924`` (``_123456`` appended with ``micro``)."""
    when = when or now()
    return when.strftime("%Y%m%d_%H%M%S" + ("_%f" if micro else ""))


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):  # not Linux: the usual default
        return 0o022


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``; when the block ends without error it is fsynced and renamed onto
    ``path`` (with the mode a new file gets, not mkstemp's 0600: reports are read by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync, then rename ``tmp_path`` onto ``path``."""
    with _replacing(path) as tmp:
        write(tmp)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """An open temporary file beside ``path``, renamed onto it when the block ends without error."""
    with _replacing(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
        yield fh


@contextlib.contextmanager
def incoming(folder: Path, write: Callable[[Path], None], *, prefix: str = ".incoming.",
             suffix: str = "") -> Iterator[Path]:
    """A file written under a temporary name in ``folder``, for a writer that settles its final name later.

    ``write(tmp_path)`` fills it; it is fsynced (with the mode a new file gets) before the block
    starts, so the slow part happens before the caller takes a lock. Inside the block,
    :func:`commit` renames it onto its final name; if the block ends first, it is removed. A
    crash leaves it under ``prefix`` for a cleaner that knows it (``churn registry check --repair``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def commit(tmp_path: Path, path: Path) -> None:
    """Rename an :func:`incoming` file onto ``path`` (atomic: a reader sees no file or the whole one)."""
    os.replace(tmp_path, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Append ``data`` with a single ``write`` on an O_APPEND descriptor.

    POSIX appends of one write() land whole and unmixed with other appenders,
    so concurrent writers never interleave lines. Raises ``OSError`` when it cannot.
    """
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as for every other file
    try:
        written = os.write(fd, data)
        if written != len(data):  # disk full mid-write
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def rotated(path: Path) -> list[Path]:
    """The rotated copies of a log (``name.1``, ``name.2`` ...: larger is older), oldest first."""
    return sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix.lstrip(".").isdigit()),
                  key=lambda p: -int(p.suffix[1:]))


def append_line(path: Path, line: str) -> None:
    """Append one text line (see :func:`append_bytes`), creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    append_bytes(path, (line.rstrip("\n") + "\n").encode("utf-8"))


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
