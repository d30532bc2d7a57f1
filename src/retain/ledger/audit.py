"""The audit log: an append-only, hash-chained JSONL file of everything that happened to a home.

Each line is one entry ``{seq, time, op, last, prev_sha256, payload}`` in canonical JSON, where
``prev_sha256`` is the SHA-256 of the previous line (the first entry points at 64 zeros). Changing, removing
or reordering any line breaks the chain from there on; the newest line is pinned by the hash the database
keeps. The entries of one operation (a learn: version created, gate decision, promotion) are written in one
``write`` and share ``op``; only the one marked ``last`` commits them, so a torn tail is recognised and cut.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retain.ledger.atomic import append_durable, fsync_dir
from retain.ledger.hashing import ZERO_SHA, canonical_json, sha256_bytes
from retain.ledger.keys import Key


@dataclass(frozen=True)
class Entry:
    """One parsed line: the entry itself, its hash, its 1-based line number and where the line ends."""

    data: dict[str, Any]
    sha256: str
    line: int
    end: int

    @property
    def seq(self) -> int:
        return self.data["seq"]

    @property
    def payload(self) -> dict[str, Any]:
        return self.data["payload"]


def now() -> str:
    """UTC time in ISO 8601, the only clock the ledger records."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def home_id_after(payload: dict[str, Any], current: str | None) -> str | None:
    """The home's id from this entry on: ``init`` (and ``keyed``, for a home made before ids) fixes it, and a
    ``home_id`` entry (a copy taking an id of its own) changes it; the entry that sets an id is signed for it."""
    kind = payload.get("type")
    if kind == "home_id":
        return payload.get("id")
    if kind in ("init", "keyed") and payload.get("home_id"):
        return payload["home_id"]
    return current


def encode(events: list[dict[str, Any]], head_seq: int, head_sha: str, start: int,
           key: Key | None = None, home: str | None = None) -> tuple[list[Entry], bytes]:
    """The entries (and the bytes to append at byte ``start``) for one operation's events, chained onto the head.

    With a ``key`` every entry carries its MAC (see :mod:`retain.ledger.keys`), written in the same append.
    """
    entries, chunks, prev, stamp, offset = [], [], head_sha, now(), start
    for i, payload in enumerate(events):
        data = {"seq": head_seq + 1 + i, "time": stamp, "op": head_seq + 1, "last": i == len(events) - 1,
                "prev_sha256": prev, "payload": payload}
        home = home_id_after(payload, home)
        if key is not None:
            data = key.sign(data, home)
        raw = canonical_json(data)
        prev = sha256_bytes(raw)
        offset += len(raw) + 1
        entries.append(Entry(data, prev, head_seq + 1 + i, offset))
        chunks.append(raw + b"\n")
    return entries, b"".join(chunks)


def parse(raw: bytes, start: int = 0, first_line: int = 1,
          prev: str = ZERO_SHA, seq: int = 0) -> tuple[list[Entry], list[str]]:
    """Walk ``raw`` (the log from byte ``start``) checking the chain; return good entries and problems.

    Parsing stops at the first problem: everything after a break is unverifiable.
    """
    entries: list[Entry] = []
    pos, line = start, first_line
    while pos < len(raw):
        cut = raw.find(b"\n", pos)
        if cut < 0:
            return entries, [f"audit.jsonl:{line}: incomplete last line (no newline)"]
        text = raw[pos:cut]
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return entries, [f"audit.jsonl:{line}: not valid JSON ({err})"]
        if not isinstance(data, dict) or canonical_json(data) != text:
            return entries, [f"audit.jsonl:{line}: not in canonical form (the line was edited)"]
        if data.get("seq") != seq + 1:
            return entries, [f"audit.jsonl:{line}: seq {data.get('seq')} where {seq + 1} was expected"]
        if data.get("prev_sha256") != prev:
            return entries, [f"audit.jsonl:{line - 1}-{line}: hash chain broken: entry {seq + 1} records a "
                             f"different hash for entry {seq} (one of the two lines was changed)"]
        prev, seq = sha256_bytes(text), seq + 1
        entries.append(Entry(data, prev, line, cut + 1))
        pos, line = cut + 1, line + 1
    return entries, []


def committed(entries: list[Entry]) -> list[Entry]:
    """The entries up to the last one that closes an operation (a torn operation commits nothing)."""
    ends = [i for i, e in enumerate(entries) if e.data.get("last")]
    return entries[: ends[-1] + 1] if ends else []


class AuditLog:
    """The log file of one home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> bytes:
        return self.path.read_bytes() if self.path.exists() else b""

    def append(self, data: bytes) -> None:
        append_durable(self.path, data)

    def truncate(self, size: int) -> None:
        """Cut a torn tail that never committed (only ever beyond what the database has applied)."""
        with open(self.path, "r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(self.path.parent)
