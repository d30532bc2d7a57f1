"""Durable writes: a file appears whole or not at all, and stays after a crash.

Every file a home keeps is written to a temporary name, flushed with ``fsync``, renamed into place, and the
directory is synced so the rename itself survives power loss. ``killpoint`` is a test hook: with
``RETAIN_TEST_KILL_AT=<name>`` the process dies at that point, so tests can check a home after a crash.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

KILL_ENV = "RETAIN_TEST_KILL_AT"


def killpoint(name: str) -> None:
    """Die here, without cleanup, when the crash tests ask for it."""
    if os.environ.get(KILL_ENV) == name:
        os._exit(137)


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes, tmp_dir: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = Path(tmp_dir or path.parent) / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        killpoint("before_rename")
        os.replace(tmp, path)
    except BaseException:
        # A full disk fails the write or the flush: leave no half-written temporary file behind.
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_durable(path: str | Path, data: bytes) -> None:
    """Append ``data`` in one write and sync it. ``audit_torn`` simulates power loss halfway through."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    try:
        if os.environ.get(KILL_ENV) == "audit_torn":
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            os._exit(137)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        # A full disk can stop the append halfway: cut it back so the log ends where the last commit did.
        os.ftruncate(fd, size)
        raise
    finally:
        os.close(fd)
