"""One writer per home: an exclusive ``fcntl`` lock on ``HOME/lock``.

The lock file names its holder (pid, command, start time) so a second writer can say who it waits for. The
kernel drops the lock when the holder dies, however it dies, so a crash never leaves a home locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retain.errors import RetainError
from retain.ledger.audit import now


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def exclusive(path: Path, command: str, timeout: float = 0.0, poll: float = 0.2) -> Iterator[None]:
    """Hold the home's write lock; wait up to ``timeout`` seconds for it, then fail with who holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RetainError(f"the home is busy: {_holder(path)} is writing to it; try again when it "
                                      "finishes", file=str(path.parent)) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": now()}).encode(), 0)
        yield
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock right now (a shared probe that never blocks)."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
