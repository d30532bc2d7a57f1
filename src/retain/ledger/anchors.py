"""Checking the audit log against what lives outside the home: the signing key, this machine's witness, and
an exported anchor (a chain head the user keeps elsewhere, like a published checkpoint in RFC 6962).

Each check returns ``(problems, notes)``; :mod:`retain.ledger.verify` collects them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import keys
from retain.ledger.atomic import write_atomic
from retain.ledger.audit import Entry, now
from retain.ledger.hashing import canonical_json

ANCHOR_FORMAT = "retain-anchor/1"
Findings = tuple[list[str], list[str]]


def check_signatures(entries: list[Entry], key: keys.Key | None) -> Findings:
    """Every entry from the first signed one on must carry a valid MAC of ``key``.

    Reports the first entry that fails and how many fail after it (a recomputed chain makes every later MAC
    fail too, since each covers the previous entry's hash).
    """
    signed = [e for e in entries if "mac" in e.data]
    if not signed:
        return [], (["the audit log is not signed: anyone who can write to the home can rewrite it unseen "
                     "(retain key init, then retain key sign HOME)"] if entries else [])
    if key is None:
        return [], [f"the audit log is signed (key {signed[-1].data.get('key')}) but no key is set here to "
                    f"check it ({keys.ENV} or {keys.key_path()})"]
    first = signed[0].line
    bad = []
    for entry in entries[first - 1:]:
        if "mac" not in entry.data:
            bad.append(f"audit.jsonl:{entry.line}: not signed, though every entry from {first} on must be "
                       "(appended or rewritten without the key)")
        elif entry.data.get("key") != key.id:
            bad.append(f"audit.jsonl:{entry.line}: signed with key {entry.data.get('key')}, not yours ({key.id})")
        elif not key.check(entry.data):
            bad.append(f"audit.jsonl:{entry.line}: the signature does not match (the entry was changed or made "
                       "without the key)")
    notes = [f"entries 1-{first - 1} predate the signing key"] if first > 1 else []
    if len(bad) > 1:
        return [bad[0] + f"; {len(bad) - 1} later entries fail too"], notes
    return bad, notes


def _against(entries: list[Entry], seq: int, sha: str, what: str) -> list[str]:
    if seq > len(entries):
        return [f"audit.jsonl: ends at entry {len(entries)} but {what} has entry {seq} (the log was cut)"]
    if seq and entries[seq - 1].sha256 != sha:
        return [f"audit.jsonl:{seq}: entry {seq} is not the one {what} records (the log was rewritten)"]
    return []


def check_witness(root: Path, entries: list[Entry], key: keys.Key | None) -> Findings:
    """Compare with the last head this machine signed for this home (found by first entry or by path)."""
    if key is None or not entries:
        return [], []
    problems: list[str] = []
    for record in keys.witnesses(root, entries[0].sha256):
        if record.get("genesis") != entries[0].sha256:
            problems.append(f"audit.jsonl:1: this machine signed a log at {root} that began with another entry "
                            "(the log was rewritten from its start)")
        else:
            problems += _against(entries, int(record.get("seq", 0)), str(record.get("sha256")),
                                 "the head this machine last signed")
    return problems, []


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


def check_anchor(path: Path, entries: list[Entry], key: keys.Key | None) -> Findings:
    """The log must still hold the anchored entry, unchanged; entries after it are new history."""
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
    if not entries or entries[0].sha256 != record["genesis"]:
        return problems + ["audit.jsonl:1: the first entry is not the anchor's (another home, or the log was "
                           "rewritten from its start)"], []
    problems += _against(entries, record["seq"], record["sha256"], f"the anchor {path.name}")
    later = len(entries) - record["seq"]
    return problems, ([f"matches the anchor at entry {record['seq']}; {later} entries since"] if not problems else [])


def sign_home(path: str | Path) -> int:
    """``retain key sign HOME``: start signing a home made before the key (one signed ``keyed`` entry).

    From this entry on, every entry must carry the key's MAC; the earlier ones are vouched for only by the
    chain up to here. Returns the entry's seq.
    """
    from retain.ledger.core import Home

    key = keys.load()
    if key is None:
        raise RetainError(f"no signing key; create one with: retain key init (or set {keys.ENV})")
    home = Home.open(path)
    with home.writing("key sign"):
        entries = home.commit([{"type": "keyed", "key": key.id}])
    return entries[-1].seq
