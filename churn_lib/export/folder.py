"""A folder written whole or not at all: built in a temporary sibling, then renamed onto its target.

:func:`replacing` refuses a target that is a file, or a folder that is not
empty unless ``force``; it gives the caller a fresh folder beside the target
(same file system, the mode the umask gives a new folder), fsyncs what the
caller wrote, then renames it onto the target. With ``force`` a non-empty
target is swapped with the new folder in one step where the system can
(Linux ``renameat2(RENAME_EXCHANGE)``), else renamed aside first; the old
content is removed only once the new one is in place. If the block fails, the
temporary folder is removed and the target is untouched: a reader sees the old
folder or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from ..exceptions import ChurnError

#: ``renameat2`` arguments (linux/fcntl.h, linux/fs.h).
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _refuse_target(target: Path, *, force: bool) -> None:
    """Refuse a target that is not a folder, or a non-empty one without ``force``."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ChurnError(f"{target} exists and is not a folder; choose another path", path=str(target))
    if not force and any(target.iterdir()):
        raise ChurnError(f"{target} is not empty; choose an empty or new folder, or pass --force to replace it",
                         path=str(target))


def _sibling(target: Path, kind: str) -> Path:
    """A new, empty folder beside ``target`` (``.NAME.kind-RANDOM``), made with the umask's mode."""
    while True:
        path = target.parent / f".{target.name}.{kind}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)  # less the umask, as every folder the project makes
            return path
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk (before it is renamed into place)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); False where the system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _install(new: Path, target: Path) -> Path | None:
    """Put ``new`` at ``target``; return where the old content went (None when there was none)."""
    if not target.exists() or not any(target.iterdir()):
        os.rename(new, target)  # onto nothing, or onto an empty folder
        return None
    if _exchange(new, target):
        return new  # the old folder now lives at the temporary name
    old = _sibling(target, "old")
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    return old


@contextlib.contextmanager
def replacing(target: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed onto it when the block ends without error.

    Parameters
    ----------
    target : path
        The folder to write (its parents are created).
    force : bool, default=False
        Replace a non-empty ``target`` (atomically where the system can swap two folders).

    Yields
    ------
    pathlib.Path
        The empty temporary folder to fill.

    Raises
    ------
    ChurnError
        ``target`` is a file, a non-empty folder without ``force``, or its parent folder is not writable.
    """
    target = Path(target).expanduser().resolve()
    _refuse_target(target, force=force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        new = _sibling(target, "new")
    except OSError as exc:
        raise ChurnError(f"cannot write {target}: its folder {target.parent} is not writable "
                         f"({exc.strerror or exc})", path=str(target)) from None
    try:
        yield new
        _sync_tree(new)
        _refuse_target(target, force=force)  # filled by someone else meanwhile?
        old = _install(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    _fsync(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
