"""Canonical JSON and SHA-256: the two things every tamper-evident record in a home is built from.

Canonical JSON (sorted keys, no spaces, UTF-8, no NaN) makes one value hash the same on every machine, so a
record's hash can be checked long after it was written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ZERO_SHA = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value is hashed as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks so large shards do not have to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
