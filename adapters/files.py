"""Writing a file exactly once, atomically, for the folder-based adapters."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_once(path: Path, data: bytes, *, mode: int) -> bool:
    """Create `path` with `data` and permissions `mode`; False if it already exists.

    The bytes go to a temporary file beside it that is synced, given its mode
    and hard-linked into place. The link fails when the name exists, so a
    reader never sees a half-written file and no writer replaces another's.
    """
    if path.exists():
        return False
    temporary = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
