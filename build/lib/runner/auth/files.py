"""Atomic, private writes for the credential files (htpasswd, token store).

A credential file is replaced, never edited in place: a reader (the running server reloads on
change) sees either the old file or the new one, never half of each, and a crash mid-write
leaves the old file intact. The temporary file is created 0600 from the start, so the new
content is never readable by others, not even for an instant.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + rename), with ``mode``."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask; be exact
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the folder is synced.
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def file_version(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or edited: (inode, mtime_ns, size); None if absent.

    mtime alone can miss two writes within the file system's timestamp granularity; the inode
    changes on every atomic replace, and the size on most in-place edits.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
