"""The temporary folders of the atomic writer: made beside the file, named after their owner, cleaned when stale,
and the written file put in place without ever replacing a file the caller did not ask to replace.

A temporary folder is named ``.ctorgans-<pid>@<host>-<random>``. A process killed while writing (SIGKILL, power
loss) leaves its folder behind; the next write into the same folder removes every such folder older than
:data:`STALE_AFTER_S` whose owner is no longer running on this machine (a folder of another machine, or of the
format used before the owner was recorded, after :data:`FOREIGN_STALE_AFTER_S`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

PREFIX = ".ctorgans-"
#: a temporary folder untouched this long, whose owner process is gone, is a leftover of a killed write
STALE_AFTER_S = 5 * 60
#: leftovers whose owner cannot be checked (another machine, or no owner in the name) are removed after a day
FOREIGN_STALE_AFTER_S = 24 * 3600

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"
_OWNER = re.compile(r"^(\d+)@([A-Za-z0-9._]+)-[^-]+$")


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C there: such leftovers wait for the one-day rule
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds that id
        return True
    return True


def _stale(entry: os.DirEntry, now: float) -> bool:
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    if age < STALE_AFTER_S:
        return False
    owner = _OWNER.match(entry.name[len(PREFIX):])
    if owner is None or owner.group(2) != _HOST or os.name == "nt":
        return age >= FOREIGN_STALE_AFTER_S
    return not _alive(int(owner.group(1)))


def clean_stale(folder: Path) -> list[Path]:
    """Remove the leftover temporary folders of killed writes in ``folder``; return what was removed."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False) and _stale(entry, now):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Path(entry.path))
    return removed


def folder_error(path: Path, exc: OSError) -> OSError:
    """The error of a folder that cannot hold the file, naming the file asked for (never the temporary folder)."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        error: OSError = PermissionError(
            f"cannot write {path}: {reason} in the folder {path.parent} (it is read-only or not yours); choose a "
            "folder you can write to, or ask for write access. Nothing was written"
        )
    else:
        error = OSError(f"cannot write {path}: {reason} in the folder {path.parent}; choose another folder. "
                        "Nothing was written")
    error.errno = exc.errno  # the message alone in str(error), the code still there for callers
    return error


def make_tempdir(path: Path) -> Path:
    """A new temporary folder beside ``path`` (its folder made when missing), after removing stale ones."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path.parent)
        return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}@{_HOST}-", dir=path.parent))
    except OSError as exc:
        raise folder_error(path, exc) from None


def exists_error(path: Path) -> FileExistsError:
    error = FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
    error.errno = errno.EEXIST
    return error


def place(src: Path, dst: Path, *, overwrite: bool) -> None:
    """Move the written ``src`` to ``dst``: a rename over it with ``overwrite``, else a hard link that fails when
    ``dst`` exists (one of two writers racing for one name wins, the other gets :class:`FileExistsError`)."""
    if overwrite:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise exists_error(dst) from None
    except OSError as exc:  # a file system without hard links: reserve the name exclusively, then rename onto it
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        try:
            os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise exists_error(dst) from None
        os.replace(src, dst)
        return
    os.unlink(src)
