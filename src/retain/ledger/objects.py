"""The content-addressed object store: every blob lives at ``objects/<sha[:2]>/<sha[2:]>``.

A blob's name is the SHA-256 of its bytes, so an unchanged tensor, data file or held-out set is stored once
however many versions use it, and any changed byte is found by hashing the file again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from retain.errors import RetainError
from retain.ledger.atomic import fsync_dir, killpoint, write_atomic
from retain.ledger.hashing import sha256_bytes, sha256_file


class ObjectStore:
    """Blobs under ``root``; temporary files go to ``tmp`` (same file system, so renames are atomic)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        self.bytes_written = 0
        # Blobs this process wrote (not found already stored), so a write that fails before its commit can
        # take back exactly those and leave no unreferenced blobs.
        self.new: list[str] = []

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:]

    def relpath(self, sha: str) -> str:
        return f"objects/{sha[:2]}/{sha[2:]}"

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its SHA-256. ``bytes_written`` counts only blobs not already stored."""
        sha = sha256_bytes(data)
        target = self.path(sha)
        if target.is_file() and target.stat().st_size == len(data):
            return sha
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.root)
        write_atomic(target, data, tmp_dir=self.tmp)
        self.new.append(sha)
        self.bytes_written += len(data)
        killpoint("object_written")
        return sha

    def discard_new(self) -> None:
        """Remove the blobs recorded in :attr:`new` (the caller knows no commit references them)."""
        for sha in self.new:
            self.path(sha).unlink(missing_ok=True)
        self.new.clear()

    def remove(self, sha: str) -> int:
        """Delete one blob (for ``gc``); return the bytes freed."""
        target = self.path(sha)
        size = target.stat().st_size
        target.unlink()
        return size

    def get(self, sha: str) -> bytes:
        """The blob's bytes, checked against its name; a missing or changed blob is a user-facing error."""
        target = self.path(sha)
        if not target.is_file():
            raise RetainError("missing object (the home is damaged; run retain verify)", file=str(target))
        data = target.read_bytes()
        if sha256_bytes(data) != sha:
            raise RetainError("object content does not match its hash (the home is damaged; run retain verify)",
                              file=str(target))
        return data

    def size(self, sha: str) -> int:
        return self.path(sha).stat().st_size

    def __iter__(self) -> Iterator[str]:
        """Every stored blob's name, in sorted order."""
        if not self.root.is_dir():
            return
        for sub in sorted(os.listdir(self.root)):
            folder = self.root / sub
            if folder.is_dir() and len(sub) == 2:
                for name in sorted(os.listdir(folder)):
                    yield sub + name

    def check(self, sha: str) -> bool:
        """True when the blob exists and its bytes hash to its name."""
        target = self.path(sha)
        return target.is_file() and sha256_file(target) == sha
