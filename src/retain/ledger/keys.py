"""The signing key kept outside every home, and what it signs.

A hash chain only proves order relative to a trusted head: whoever can rewrite ``audit.jsonl`` can recompute
every hash. So each audit entry also carries an HMAC-SHA256 over its canonical JSON (which includes the
previous entry's hash), made with a key that lives in the user's config directory or the ``RETAIN_KEY``
environment variable, never in the home: the small-scale form of a signed tree head (RFC 6962, Sigstore's
Rekor checkpoints). Without the key an entry can be changed or appended, but not signed.

The config directory also keeps a *witness* per home id: the last head this machine signed there, written
only after a commit. A log cut back to an earlier, still validly signed state is found by comparing with it.
The home's id (fixed at init, in ``home.json`` and the first entry) is inside every MAC, so signed entries
from a copy of the home (which takes an id of its own at its first write) do not check in the original.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger.atomic import write_atomic
from retain.ledger.hashing import canonical_json

ENV = "RETAIN_KEY"
MIN_SECRET = 16


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/retain`` or ``~/.config/retain`` (the XDG Base Directory convention)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "retain"


def key_path() -> Path:
    return config_dir() / "key"


@dataclass(frozen=True)
class Key:
    """A secret and where it came from; ``id`` names it in entries without revealing it."""

    secret: bytes
    source: str

    @property
    def id(self) -> str:
        return hashlib.sha256(b"retain-key-id:" + self.secret).hexdigest()[:16]

    def mac(self, data: bytes) -> str:
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()

    def sign(self, entry: dict[str, Any], home: str | None = None) -> dict[str, Any]:
        """The entry with ``key``, ``home`` (the home's id, when given) and ``mac`` added; the MAC covers every
        other field, so an entry signed for one home does not check in another."""
        signed = {k: v for k, v in entry.items() if k != "mac"}
        signed["key"] = self.id
        if home is not None:
            signed["home"] = home
        signed["mac"] = self.mac(canonical_json(signed))
        return signed

    def check(self, entry: dict[str, Any], home: str | None = None) -> bool:
        """Whether ``entry`` carries this key's valid MAC (compared in constant time) and, when ``home`` is
        given, names that home."""
        if home is not None and entry.get("home") != home:
            return False
        unsigned = {k: v for k, v in entry.items() if k != "mac"}
        return entry.get("key") == self.id and hmac.compare_digest(str(entry.get("mac", "")),
                                                                   self.mac(canonical_json(unsigned)))


def _decode(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = text.encode("utf-8")
    if len(secret) < MIN_SECRET:
        raise RetainError(f"the signing key is too short ({len(secret)} bytes; at least {MIN_SECRET})", file=where)
    return secret


def load() -> Key | None:
    """The user's key: ``RETAIN_KEY`` (hex or text) wins over the key file; ``None`` when there is neither."""
    if os.environ.get(ENV):
        return Key(_decode(os.environ[ENV], f"${ENV}"), f"${ENV}")
    path = key_path()
    if not path.is_file():
        return None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RetainError("the signing key is readable by others; run: chmod 600 " + str(path), file=str(path))
    return Key(_decode(path.read_text(), str(path)), str(path))


def init(force: bool = False) -> Path:
    """``retain key init``: write a new random 256-bit key, readable by the owner only (0600)."""
    path = key_path()
    if path.exists() and not force:
        raise RetainError("a signing key already exists (homes signed with it need it; --force replaces it)",
                          file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".key.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


# -- witness: the last head this machine signed, per home id ------------------------------------------------
def _witness_path(home_id: str) -> Path:
    return config_dir() / "witness" / f"{home_id[:32]}.json"


def place(root: Path) -> dict[str, Any]:
    """Where a home lives: its resolved path and the device and inode of its folder. A copy (``cp -r``) has
    another path and inode; a home moved with ``mv`` keeps its inode; one deleted and made again at the same
    path keeps the path but has another id."""
    info = root.stat()
    return {"home": str(root.resolve()), "dev": info.st_dev, "ino": info.st_ino}


def same_place(record: dict[str, Any], root: Path) -> bool:
    """Whether a witness ``record`` was written at ``root`` (same path, or the same folder moved)."""
    here = place(root)
    return record.get("home") == here["home"] or (record.get("dev"), record.get("ino")) == (here["dev"], here["ino"])


def record_witness(root: Path, home_id: str, seq: int, sha: str) -> None:
    """Remember the newest signed head of the home ``home_id``, written at ``root`` (after a commit only).

    Best effort: a read-only config directory must not fail a write to the home, whose own log is the record.
    """
    path = _witness_path(home_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, canonical_json({"id": home_id, **place(root), "seq": seq, "sha256": sha}) + b"\n")
    except OSError:
        pass


def witness(home_id: str) -> dict[str, Any] | None:
    """This machine's witness of the home ``home_id`` (``None`` when this machine never signed it)."""
    path = _witness_path(home_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
