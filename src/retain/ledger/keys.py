"""The signing key kept outside every home, what it signs, and the public keys a reading machine trusts.

A hash chain only proves order relative to a trusted head: whoever can rewrite ``audit.jsonl`` can recompute
every hash. So each audit entry also carries an HMAC-SHA256 over its canonical JSON (which includes the
previous entry's hash), made with a key that lives in the user's config directory or the ``RETAIN_KEY``
environment variable, never in the home: the small-scale form of a signed tree head (RFC 6962, Sigstore's
Rekor checkpoints). Without the key an entry can be changed or appended, but not signed.

An HMAC is checked only with the secret that made it. So every entry signed since Ed25519 signatures exist
also carries ``sig``, an Ed25519 signature (RFC 8032, Josefsson and Liusvaara, 2017: "Edwards-Curve Digital
Signature Algorithm (EdDSA)") made with a private key derived from the same secret (the 32-byte seed is
SHA-256(``b"retain-ed25519:"`` + secret), so every existing key has a public key with no user action). What
each covers, for an entry ``{seq, time, op, last, prev_sha256, payload, key, home}``:

- ``sig``: every field but ``mac`` and ``sig`` (the canonical JSON of the entry without them);
- ``mac``: every field but ``mac``, ``sig`` included; an entry made before signatures has no ``sig`` and its
  MAC covers the same fields as before.

So the MAC vouches for the signature and the signature for everything the MAC covers but the MAC itself: the
key's owner checks both, a machine holding only the public key (``retain key public`` prints it) checks the
signature. Ed25519 is deterministic: one secret signs one entry one way. A home names its public key in
``home.json`` and in a signed entry (``init``, ``keyed``, ``home_id`` or, for a home signed before, a
``public_key`` entry written at its first write); what a reading machine trusts is kept here, outside every
home, because whoever can write to a home can re-sign its whole log with a key pair of their own:

- ``trusted_keys``: the keys ``retain key trust`` pinned (one ``ed25519:<hex>`` a line);
- ``known_homes/<id>.json``: trust on first use, like ssh's ``known_hosts``: the first time a machine without
  the secret reads a signed home it pins the home's id (and where it lives) to the public key the home names;
- ``RETAIN_PUBLIC_KEY`` (or ``retain verify --public-key``): a key for one command.

:mod:`retain.ledger.trust` decides which of them checks a given home.

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
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger.atomic import write_atomic
from retain.ledger.hashing import canonical_json

ENV = "RETAIN_KEY"
PUBLIC_ENV = "RETAIN_PUBLIC_KEY"
MIN_SECRET = 16
PREFIX = "ed25519:"
# Entry fields no signature covers: the MAC covers every field but itself, the Ed25519 signature every field but
# these two.
SIGNATURES = ("mac", "sig")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/retain`` or ``~/.config/retain`` (the XDG Base Directory convention)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "retain"


def key_path() -> Path:
    return config_dir() / "key"


# RFC 8032, 5.1.3: decoding a point of edwards25519 (a public key is the encoding of one).
_P = 2 ** 255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _is_point(raw: bytes) -> bool:
    """Whether 32 bytes are the encoding of a point of edwards25519 (RFC 8032, section 5.1.3)."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if len(raw) != 32 or y >= _P:
        return False
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return raw[31] >> 7 == 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return (x * x - x2) % _P == 0


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (32 bytes); ``text`` is its printed form, ``ed25519:`` and 64 hex digits."""

    raw: bytes

    @property
    def text(self) -> str:
        return PREFIX + self.raw.hex()

    @cached_property
    def _key(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(self.raw)

    def check(self, entry: dict[str, Any], home: str | None = None) -> bool:
        """Whether ``entry`` carries a valid Ed25519 signature by this key over every field but ``mac`` and
        ``sig`` and, when ``home`` is given, names that home."""
        from cryptography.exceptions import InvalidSignature

        if home is not None and entry.get("home") != home:
            return False
        sig = entry.get("sig")
        try:
            raw = bytes.fromhex(sig) if isinstance(sig, str) else b""
        except ValueError:
            return False
        if len(raw) != 64:
            return False
        try:
            self._key.verify(raw, canonical_json({k: v for k, v in entry.items() if k not in SIGNATURES}))
        except InvalidSignature:
            return False
        return True


def parse_public(text: object, field: str | None = None, file: str | None = None,
                 line: int | None = None) -> PublicKey:
    """``ed25519:<64 hex digits>`` (or the 64 digits alone) as a :class:`PublicKey`; anything else is a one-line
    error naming ``field`` (the option, argument or variable it came from)."""
    value = text.strip() if isinstance(text, str) else ""
    digits = value[len(PREFIX):] if value.lower().startswith(PREFIX) else value
    try:
        raw = bytes.fromhex(digits) if len(digits) == 64 else b""
    except ValueError:
        raw = b""
    if not raw or not _is_point(raw):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise RetainError(f"not an Ed25519 public key ({shown!r}; expected ed25519: and 64 hex digits, as retain "
                          "key public prints)", field=field, file=file, line=line)
    return PublicKey(raw)


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

    @cached_property
    def _private(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"retain-ed25519:" + self.secret).digest())

    @cached_property
    def public(self) -> PublicKey:
        """The Ed25519 public key derived from this secret (the same for the same secret, on any machine)."""
        from cryptography.hazmat.primitives import serialization

        return PublicKey(self._private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw))

    def sign(self, entry: dict[str, Any], home: str | None = None) -> dict[str, Any]:
        """The entry with ``key``, ``home`` (the home's id, when given), ``sig`` and ``mac`` added: the Ed25519
        signature covers every field but ``mac`` and ``sig``, the MAC every field but itself (the signature
        too), so an entry signed for one home checks in no other."""
        signed = {k: v for k, v in entry.items() if k not in SIGNATURES}
        signed["key"] = self.id
        if home is not None:
            signed["home"] = home
        signed["sig"] = self._private.sign(canonical_json(signed)).hex()
        signed["mac"] = self.mac(canonical_json(signed))
        return signed

    def check(self, entry: dict[str, Any], home: str | None = None) -> bool:
        """Whether ``entry`` carries this key's valid MAC (compared in constant time), a valid Ed25519 signature
        when it has one (an entry signed before signatures has none) and, when ``home`` is given, names that
        home."""
        if home is not None and entry.get("home") != home:
            return False
        unsigned = {k: v for k, v in entry.items() if k != "mac"}
        return (entry.get("key") == self.id
                and hmac.compare_digest(str(entry.get("mac", "")), self.mac(canonical_json(unsigned)))
                and ("sig" not in entry or self.public.check(entry, home)))


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


# -- public keys this machine trusts: pinned with retain key trust, per home on first use, or for one command ----
def trusted_path() -> Path:
    return config_dir() / "trusted_keys"


def trusted() -> list[PublicKey]:
    """The public keys ``retain key trust`` pinned on this machine (a hand-edited bad line is a one-line error)."""
    path = trusted_path()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found: list[PublicKey] = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            found.append(parse_public(text, file=str(path), line=number))
    return found


def trust(public: PublicKey, remove: bool = False) -> bool:
    """Add ``public`` to this machine's trusted keys (or remove it); whether the file changed."""
    have = trusted()
    if (public in have) != remove:
        return False
    keep = [k for k in have if k != public] + ([] if remove else [public])
    path = trusted_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, "".join(f"{k.text}\n" for k in keep).encode())
    return True


def explicit(text: str | None = None, field: str = "--public-key") -> PublicKey | None:
    """The public key given for this command: ``text`` (an option), else ``RETAIN_PUBLIC_KEY``."""
    if text is not None:
        return parse_public(text, field=field)
    value = os.environ.get(PUBLIC_ENV)
    return parse_public(value, field=f"${PUBLIC_ENV}") if value else None


def _known_path(home_id: str) -> Path:
    return config_dir() / "known_homes" / f"{home_id[:32]}.json"


def _known(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("public_key"), str) else None


def pinned(home_id: str | None, root: Path) -> tuple[dict[str, Any], Path] | None:
    """The public key this machine pinned for the home ``home_id`` on first use or, failing that, for the home
    it read at ``root`` (same path, or the same folder moved: an attacker can rewrite a home's id, not where it
    lives); with the pin's file."""
    if home_id:
        path = _known_path(home_id)
        record = _known(path)
        if record is not None and record.get("id") == home_id:
            return record, path
    try:
        files = sorted((config_dir() / "known_homes").glob("*.json"))
    except OSError:
        return None
    here = [(record, path) for path in files if (record := _known(path)) is not None and same_place(record, root)]
    return max(here, key=lambda found: str(found[0].get("pinned_at", ""))) if here else None


def pin(root: Path, home_id: str, public: PublicKey) -> None:
    """Pin ``home_id`` (read at ``root``) to ``public`` on this machine; best effort, as the witness is."""
    path = _known_path(home_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_atomic(path, canonical_json({"id": home_id, "public_key": public.text, **place(root),
                                           "pinned_at": when}) + b"\n")
    except OSError:
        pass
