"""An exported anchor (a chain head the user keeps elsewhere, like a published checkpoint in RFC 6962), and
``retain key sign``. The checks against the key and this machine's witness live in :mod:`retain.ledger.trust`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import keys
from retain.ledger.atomic import write_atomic
from retain.ledger.audit import Entry, now
from retain.ledger.hashing import canonical_json

ANCHOR_FORMAT = "retain-anchor/1"
Findings = tuple[list[str], list[str]]


def _against(entries: list[Entry], seq: int, sha: str, what: str) -> list[str]:
    if seq > len(entries):
        return [f"audit.jsonl: ends at entry {len(entries)} but {what} has entry {seq} (the log was cut)"]
    if seq and entries[seq - 1].sha256 != sha:
        return [f"audit.jsonl:{seq}: entry {seq} is not the one {what} records (the log was rewritten)"]
    return []


def anchor(entries: list[Entry], key: keys.Key | None) -> dict[str, Any]:
    """The exportable chain head: first entry, last entry, their hashes; with a MAC when a key is set."""
    if not entries:
        raise RetainError("the audit log is empty; there is no head to export")
    record: dict[str, Any] = {"format": ANCHOR_FORMAT, "genesis": entries[0].sha256, "seq": entries[-1].seq,
                              "sha256": entries[-1].sha256, "exported_at": now()}
    return key.sign(record) if key is not None else record


def export_anchor(entries: list[Entry], key: keys.Key | None, out: Path) -> dict[str, Any]:
    record = anchor(entries, key)
    write_atomic(out, canonical_json(record) + b"\n")
    return record


def check_anchor(path: Path, entries: list[Entry], key: keys.Key | None,
                 public: keys.PublicKey | None = None) -> Findings:
    """The log must still hold the anchored entry, unchanged; entries after it are new history. The anchor's own
    signature is checked with the key, or else with ``public`` (the public key the home was checked with)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RetainError(f"cannot read the anchor ({err})", file=str(path)) from None
    if not isinstance(record, dict) or record.get("format") != ANCHOR_FORMAT:
        raise RetainError(f"not a retain anchor (format {ANCHOR_FORMAT})", file=str(path))
    for name, kind in (("genesis", str), ("seq", int), ("sha256", str)):
        if not isinstance(record.get(name), kind):
            raise RetainError(f"missing or not a {kind.__name__}", file=str(path), field=name)
    problems: list[str] = []
    if "mac" in record and key is not None and not key.check(record):
        problems.append(f"{path}: the anchor's signature does not match your key (the anchor was edited)")
    elif key is None and public is not None and "sig" in record and not public.check(record):
        problems.append(f"{path}: the anchor's Ed25519 signature does not check with public key {public.text} (the "
                        "anchor was edited, or exported from another home)")
    if not entries or entries[0].sha256 != record["genesis"]:
        return problems + ["audit.jsonl:1: the first entry is not the anchor's (another home, or the log was "
                           "rewritten from its start)"], []
    problems += _against(entries, record["seq"], record["sha256"], f"the anchor {path.name}")
    later = len(entries) - record["seq"]
    return problems, ([f"matches the anchor at entry {record['seq']}; {later} entries since"] if not problems else [])


def sign_home(path: str | Path) -> tuple[int, bool]:
    """``retain key sign HOME``: start signing a home made before the key (one signed ``keyed`` entry).

    From this entry on, every entry must carry the key's MAC and Ed25519 signature; the earlier ones are vouched
    for only by the chain up to here. The entry names the public key of the signatures; a home made before home
    ids gets one in the same entry. Returns the first signed entry's seq and whether this call wrote an entry (a
    home already signed with this key is left as it is, but for the entry naming its public key that a home
    signed before Ed25519 signatures gets at its first write, :meth:`Home._check_writable`).
    """
    from retain.ledger.core import Home, is_home, write_marker

    key = keys.load()
    if key is None:
        raise RetainError(f"no signing key; create one with: retain key init (or set {keys.ENV})")
    if not is_home(path):
        raise RetainError("not a retain home (create one with: retain init HOME)", file=str(path))
    # Not Home.open: with a key set, an unsigned home fails the readers' check; signing it is the way out.
    home = Home(Path(path))
    with home.writing("key sign"):
        checked = home.check()
        signed = [e for e in checked.entries if "mac" in e.data]
        if signed:
            return signed[0].seq, home.named_key
        new = home.id or uuid.uuid4().hex
        event: dict[str, Any] = {"type": "keyed", "key": key.id, "public_key": key.public.text}
        if home.id is None:
            event["home_id"] = new
        home.id = new
        entries = home.commit([event])
        write_marker(home.root, new, True, key.public.text)
    return entries[-1].seq, True
