"""The home's check: what every command runs before it reads or writes, and ``retain verify`` reports in full.

It walks the audit log against what cannot be rewritten from inside the home (the signing key, this machine's
witness) and the database against the log:

- the chain: every line canonical and hashed into the next (:func:`retain.ledger.audit.parse`);
- the home's id: fixed at init (``home.json`` and the first entry), inside every MAC, and changed only by a
  ``home_id`` entry, written when a copy of a home takes an id of its own at its first write. The log's id
  must end where ``home.json`` says, so entries from a copy spliced onto the original are found even
  without the key;
- signatures: from the first signed entry on, every entry is signed, and that first one starts signing (init
  or ``retain key sign``); from the first entry with an Ed25519 signature on, every entry has one. With the
  key, every MAC and every signature checks for the home's id; with a key set, an unsigned log is a failure
  (``retain key sign`` is the one write allowed on it). Without the key, a public key checks the signatures
  (:func:`_anchor` says which one); with none, or on a log signed with MACs only, a signed log cannot be
  checked, and its unapplied entries are never applied;
- the witness: the last head this machine signed at this place (:mod:`retain.ledger.keys`); a log that ends
  before it, or holds another entry there, was cut or rewritten;
- the database: the head it applied is an entry the checks trust, and replaying the log up to it gives the
  same rows (so a direct SQL edit is found).

Problems come as ``where: what`` lines. ``trusted`` is how many leading entries passed every check: only
those may ever be applied.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import audit, keys, store
from retain.ledger.audit import Entry


UNSIGNED = ("audit.jsonl: not signed, though a signing key is set here: anyone who can write to the home can "
            "rewrite it unseen; if you trust it as it is, retain key sign HOME")


@dataclass
class Check:
    """What the check found. ``soft`` problems (a signed log and no key here) stop writes and fail ``verify``
    but let a reader read what the database already holds; ``problems`` stop every command."""

    entries: list[Entry]
    trusted: int
    problems: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    signed: bool = False
    unchecked: bool = False
    unsigned_with_key: bool = False
    # The public key the Ed25519 signatures were checked with, where no signing key is set here.
    public: keys.PublicKey | None = None
    # The id a killed writer committed in a ``home_id`` entry but did not write to home.json yet.
    pending_id: str | None = None
    torn: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.soft

    def blocking(self, command: str | None = None) -> list[str]:
        """The problems that stop ``command`` (``None``: a reader); ``retain key sign`` may sign an unsigned
        home that is otherwise sound."""
        return [p for p in self.problems if not (command == "key sign" and p == UNSIGNED)]

    def fail(self, index: int, problem: str) -> None:
        self.problems.append(problem)
        self.trusted = min(self.trusted, index)

    @property
    def home_id(self) -> str | None:
        """The id the log ends with (``None`` for a home made before ids existed)."""
        return self.ids[-1] if self.ids else None


def marker(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / "home.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def witness_id(entries: list[Entry], home_id: str | None) -> str | None:
    """The witness a home is filed under: its id, or for a home made before ids, its first entry's hash."""
    return home_id or (entries[0].sha256 if entries else None)


def _ids(check: Check, root: Path, want: str | None) -> None:
    running: str | None = None
    for i, entry in enumerate(check.entries):
        payload = entry.payload
        if payload.get("type") == "home_id" and payload.get("previous") != running:
            check.fail(i, f"audit.jsonl:{entry.line}: gives the home id {payload.get('id')} in place of "
                          f"{payload.get('previous')}, but the home's id there is {running}")
            return
        running = audit.home_id_after(payload, running)
        check.ids.append(running)
        if "home" in entry.data and entry.data["home"] != running:
            check.fail(i, f"audit.jsonl:{entry.line}: the entry belongs to home {entry.data['home']}, not to this "
                          f"one ({running}): copied from another home")
            return
    entries = check.entries[:len(check.ids)]
    if not entries or want == running:
        return
    last = entries[-1]
    op = [e for e in entries if e.data.get("op") == last.data.get("op")]
    if (len(op) == 1 and last.payload.get("type") == "home_id" and last.payload.get("previous") == want
            and last.payload.get("place") == str(root.resolve())):
        # A writer giving this copy its own id committed the entry and was stopped before home.json.
        check.pending_id = running
        check.notes.append(f"home.json does not have the id entry {last.seq} gave this copy yet (an interrupted "
                           "write); the next write records it")
        return
    mine = [i for i, value in enumerate(check.ids) if value == want]
    start = mine[-1] + 1 if mine else 0
    first = entries[start]
    check.fail(start, f"audit.jsonl:{first.line}: entries {first.seq}-{last.seq} belong to home {check.ids[start]}, "
                      f"not to this one (home.json: {want}): spliced from a copy of the home")


# Entries that name the public key of the home's signatures (a home signed before them names it in a
# ``public_key`` entry at its next write).
ANNOUNCING = ("init", "keyed", "home_id", "public_key")


def announced(entries: list[Entry]) -> list[tuple[int, object]]:
    """``(index, public key text)`` of every entry that names the home's public key."""
    return [(i, e.payload["public_key"]) for i, e in enumerate(entries)
            if e.payload.get("type") in ANNOUNCING and "public_key" in e.payload]


@dataclass
class Anchor:
    """What a machine without the signing key checks a home's signatures with.

    ``key``: the public key (``None`` where this machine trusts a list of keys and the home names none of
    them); ``source``: where it comes from, in words; ``strict``: this machine expects the home to carry
    Ed25519 signatures (an explicit key, a pin, a trusted list), so a log without them fails; ``pinned``: a pin
    of this very home (its id or its place), so this machine has seen it signed; ``problem``: why the home's
    signatures cannot be trusted here at all (another key than the pinned one, an untrusted key).
    """

    key: keys.PublicKey | None
    source: str
    strict: bool
    pinned: bool = False
    problem: str | None = None


def _claimed(entries: list[Entry], mark: dict[str, Any]) -> tuple[str | None, str]:
    """The public key the home names (its first naming entry, else ``home.json``), as text, and where."""
    named = announced(entries)
    if named:
        return str(named[0][1]), f"audit.jsonl:{entries[named[0][0]].line}"
    value = mark.get("public_key")
    return (str(value), "home.json") if value else (None, "")


def _anchor(check: Check, root: Path, mark: dict[str, Any], public: keys.PublicKey | None) -> Anchor | None:
    """Which public key checks this home on a machine without the signing key, in this order: the key given for
    the command (``--public-key`` or ``RETAIN_PUBLIC_KEY``); the key this machine pinned for the home (by its
    id, else by where it lives); the home's own key if ``retain key trust`` pinned it (a home naming another key
    fails where any key is trusted); else, on first use, the key the home names (pinned once it checks).
    ``None``: nothing here and the home names no key (its signatures cannot be checked)."""
    entries = check.entries
    claimed, where = _claimed(entries, mark)
    if public is not None:
        return Anchor(public, "given for this command", strict=True)
    wid = witness_id(entries, check.home_id)
    found = keys.pinned(wid, root)
    if found is not None:
        record, path = found
        try:
            key = keys.parse_public(record["public_key"], file=str(path))
        except RetainError:
            key = None
        what = (f"pinned on this machine when it first read home {record.get('id')} at {record.get('home')}, "
                f"{record.get('pinned_at')} ({path}; remove that file if the home was replaced on purpose)")
        if key is None:
            return Anchor(None, what, strict=True, pinned=True, problem=f"{path}: not a public key")
        return Anchor(key, what, strict=True, pinned=True)
    trusted = keys.trusted()
    if trusted:
        listed = ", ".join(k.text for k in trusted)
        what = f"trusted on this machine with retain key trust ({keys.trusted_path()})"
        key = next((k for k in trusted if k.text == claimed), None)
        if key is not None:
            return Anchor(key, what, strict=True)
        problem = None
        if claimed is not None:
            problem = (f"{where}: the home names public key {claimed}, which this machine does not trust (trusted "
                       f"here: {listed}; retain key trust {claimed} if it should be)")
        return Anchor(None, f"the public keys {what}: {listed}", strict=True, problem=problem)
    if claimed is None:
        return None
    try:
        key = keys.parse_public(claimed)
    except RetainError:
        return Anchor(None, "named by the home", strict=False,
                      problem=f"{where}: names {claimed!r}, which is not an Ed25519 public key")
    return Anchor(key, f"named by the home ({where}) and trusted on first use", strict=False)


def _signatures(check: Check, root: Path, key: keys.Key | None, mark: dict[str, Any], no_key: bool,
                public: keys.PublicKey | None, pin_first_use: bool = True) -> None:
    entries = check.entries
    signed = [i for i, e in enumerate(entries) if "mac" in e.data or "key" in e.data]
    check.signed = bool(signed) or bool(mark.get("signed"))
    anchor = _anchor(check, root, mark, public) if key is None else None
    if not signed:
        if mark.get("signed") and entries:
            check.fail(0, "audit.jsonl:1: not signed, though home.json says the home is (the signatures were "
                          "stripped)")
        elif key is not None and entries:
            # Fail closed: with a key set every entry must be signed; retain key sign is the one write allowed.
            check.unsigned_with_key = True
            check.problems.append(UNSIGNED)
        elif anchor is not None and anchor.strict and entries:
            # Fail closed here too: this machine holds a public key that must have signed the home.
            held = f"public key {anchor.key.text} ({anchor.source})" if anchor.key else anchor.source
            check.fail(0, f"audit.jsonl:1: not signed, though this machine holds {held}: the signatures were "
                          "stripped (or the home was never signed)")
        elif entries:
            check.notes.append("the audit log is not signed: anyone who can write to the home can rewrite it "
                               "unseen (retain key init, then retain key sign HOME)")
        return
    first = signed[0]
    if first > 0 and entries[first].payload.get("type") != "keyed":
        check.fail(0, f"audit.jsonl:{entries[first].line}: the first signed entry does not start the signing "
                      f"(init or retain key sign): the signatures of entries 1-{first} were stripped")
        return
    if first > 0:
        check.notes.append(f"entries 1-{first} predate the signing key")
    upto = len(check.ids)
    sigs = [i for i in signed if i < upto and "sig" in entries[i].data]
    first_sig = sigs[0] if sigs else None
    checker = anchor.key if anchor is not None and first_sig is not None else None
    if anchor is not None and (first_sig is not None or anchor.strict):
        if not _anchored(check, root, anchor, first, first_sig, no_key, pin_first_use):
            return
    # Past an entry whose id does not follow (``_ids`` stopped there) nothing is trusted anyway.
    for i in range(first, upto):
        entry, home = entries[i], check.ids[i]
        if "mac" not in entry.data:
            check.fail(i, f"audit.jsonl:{entry.line}: not signed, though every entry from {first + 1} on must be "
                          "(appended or rewritten without the key)")
            return
        if key is not None:
            if entry.data.get("key") != key.id:
                check.fail(i, f"audit.jsonl:{entry.line}: signed with key {entry.data.get('key')}, not yours "
                              f"({key.id})")
                return
            # An entry made before home ids carries none; once the home has an id, every MAC covers it.
            if (home is None and "home" in entry.data) or not key.check(entry.data, home):
                check.fail(i, f"audit.jsonl:{entry.line}: the signature does not match (the entry was changed, "
                              "made without the key, or signed for another home)")
                return
        if first_sig is not None and i >= first_sig and "sig" not in entry.data:
            check.fail(i, f"audit.jsonl:{entry.line}: no Ed25519 signature, though every entry from "
                          f"{first_sig + 1} on has one (appended or rewritten without the key)")
            return
        if checker is not None and "sig" in entry.data and (
                (home is None and "home" in entry.data) or not checker.check(entry.data, home)):
            check.fail(i, f"audit.jsonl:{entry.line}: the Ed25519 signature does not check with public key "
                          f"{checker.text} ({anchor.source}) (the entry was changed, signed with another key, "
                          "or signed for another home)")
            return
    if key is not None:
        return
    if checker is not None:
        check.public = checker
        check.notes.append(f"Ed25519 signatures checked with public key {checker.text} ({anchor.source}); the "
                           "MACs need the signing key, which is not set here")
        if first_sig > first:
            check.notes.append(f"entries {first + 1}-{first_sig} carry MACs only (signed before Ed25519 "
                               f"signatures); entry {first_sig + 1}'s signature covers them through the chain")
        return
    check.unchecked = True
    what = f"the audit log is signed (key {entries[signed[-1]].data.get('key')})"
    if no_key:
        check.notes.append(f"{what}; its signatures were not checked (--no-key)")
    else:
        check.soft.append(f"{what} but no key is set here to check it ({keys.ENV} or {keys.key_path()}); "
                          "retain verify --no-key checks everything else")


def _anchored(check: Check, root: Path, anchor: Anchor, first: int, first_sig: int | None, no_key: bool,
              pin_first_use: bool = True) -> bool:
    """The checks of a keyless machine's anchor before the entries' own: the home's signatures exist where the
    anchor expects them, and every public key the home names is the anchor's. Pins the home on first use.
    Whether the entries are to be checked next."""
    entries = check.entries
    if anchor.problem:
        check.fail(first, anchor.problem)
        return False
    if first_sig is None:
        held = f"public key {anchor.key.text} ({anchor.source})" if anchor.key else anchor.source
        line = entries[first].line
        if anchor.pinned:
            check.fail(first, f"audit.jsonl:{line}: no entry has an Ed25519 signature, though this machine pinned "
                              f"{held}: the signatures were stripped")
            return False
        if not no_key:
            check.fail(first, f"audit.jsonl:{line}: signed with MACs only (before Ed25519 signatures), which the "
                              f"{held} held here cannot check; the key's owner adds signatures with any write to "
                              "the home, and retain verify --no-key accepts the MACs unchecked")
            return False
        return True
    if anchor.key is None:
        check.fail(first_sig, f"audit.jsonl:{entries[first_sig].line}: has an Ed25519 signature, but the home names "
                              f"no public key, and this machine checks with {anchor.source} only")
        return False
    named = announced(entries[:len(check.ids)])
    for i, value in named:
        if value != anchor.key.text:
            check.fail(i, f"audit.jsonl:{entries[i].line}: names public key {value}, but the home's signatures are "
                          f"checked here with public key {anchor.key.text} ({anchor.source}): re-signed with "
                          "another key pair")
            return False
    if not named:
        check.fail(first_sig, f"audit.jsonl:{entries[first_sig].line}: has an Ed25519 signature, but no entry names "
                              "the home's public key (it is named where signing starts)")
        return False
    mark = marker(root).get("public_key")
    if mark is not None and mark != anchor.key.text:
        check.problems.append(f"home.json: names public key {mark}, but the home's signatures are checked here with "
                              f"public key {anchor.key.text} ({anchor.source})")
    wid = witness_id(entries, check.home_id)
    index = named[0][0]
    if not anchor.strict and not pin_first_use:
        # `retain verify` without --no-key: a key only the home itself vouches for proves nothing against an
        # attacker who re-signed it with a key pair of their own; say so (exit 1), pin nothing, check the rest
        check.soft.append(f"the home's Ed25519 signatures check with public key {anchor.key.text}, which only the "
                          "home names: nothing on this machine vouched for it before (no signing key, no retain key "
                          "trust, no pin); pass --public-key with the owner's key (retain key public on their "
                          "machine), or --no-key to accept this one and pin it")
        return True
    pin = keys.pinned(wid, root)
    if wid and (pin is None or pin[0].get("id") != wid) and anchor.key.check(entries[index].data,
                                                                            check.ids[index]):
        # Trust on first use: the entry naming the key is signed by it (what the first read can know).
        keys.pin(root, wid, anchor.key)
    return True


def witnesses(raw: bytes) -> dict[str, dict[str, Any]]:
    """This machine's witnesses of every id the log ``raw`` names. A command reads them before the database and
    the log it checks: a writer commits the log, then the database, then the witness, so one committing
    meanwhile can only leave the log longer than the witness read, never shorter (no false "cut")."""
    entries, _ = audit.parse(raw)
    running: str | None = None
    found: dict[str, dict[str, Any]] = {}
    for entry in entries or [None]:
        if entry is not None:
            payload = entry.data.get("payload")
            running = audit.home_id_after(payload if isinstance(payload, dict) else {}, running)
        wid = witness_id(entries, running)
        if wid and wid not in found:
            record = keys.witness(wid)
            if record is not None:
                found[wid] = record
    return found


def _witness(check: Check, root: Path, seen: dict[str, dict[str, Any]] | None) -> None:
    entries = check.entries
    if not entries:
        return
    done: set[str] = set()
    for value in check.ids or [None]:
        wid = witness_id(entries, value)
        if wid is None or wid in done:
            continue
        done.add(wid)
        record = keys.witness(wid) if seen is None else seen.get(wid)
        # A witness written at another place is a copy's (or the original's, seen from a copy): not this log's.
        if record is None or not keys.same_place(record, root):
            continue
        seq, sha = int(record.get("seq", 0)), str(record.get("sha256"))
        if seq > len(entries):
            check.fail(len(entries), f"audit.jsonl: ends at entry {len(entries)} but this machine signed entry "
                                     f"{seq} here (the log was cut)")
        elif seq and entries[seq - 1].sha256 != sha:
            check.fail(seq - 1, f"audit.jsonl:{seq}: entry {seq} is not the one this machine signed here (the log "
                                "was rewritten)")


def check_log(root: Path, raw: bytes, key: keys.Key | None, applied_bytes: int = 0, no_key: bool = False,
              seen: dict[str, dict[str, Any]] | None = None, public: keys.PublicKey | None = None,
              pin_first_use: bool = True) -> Check:
    """Check the log of the home at ``root`` (``raw``: its bytes). ``applied_bytes``: where the database's head
    ends; an incomplete last line after it is a killed writer's torn append, not a problem. ``seen``: the
    witnesses as :func:`witnesses` read them before ``raw`` (read now when not given). ``public``: the public
    key given for this command (``--public-key``), used where no signing key is set. ``pin_first_use``: a home
    whose public key nothing on this machine vouches for is pinned (a reader's trust on first use); off (``retain
    verify`` without ``--no-key``), that is a soft problem and nothing is pinned."""
    entries, chain = audit.parse(raw)
    check = Check(entries=entries, trusted=len(entries))
    if chain:
        start = entries[-1].end if entries else 0
        if "incomplete last line" in chain[0] and start >= applied_bytes:
            check.torn = True
            check.notes.append("the last line of the audit log is incomplete (a write was interrupted); the next "
                               "command that opens the home cuts it")
        else:
            check.fail(len(entries), chain[0])
    for i, entry in enumerate(entries):
        payload = entry.data.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            # Canonical and chained, but not an entry retain writes: everything from here on is unverifiable.
            check.fail(i, f"audit.jsonl:{entry.line}: no payload with a type (not an entry retain writes)")
            check.entries = entries = entries[:i]
            break
    mark = marker(root)
    _ids(check, root, mark.get("id"))
    _signatures(check, root, key, mark, no_key, public, pin_first_use)
    _witness(check, root, seen)
    return check


def check_database(conn: sqlite3.Connection, check: Check) -> list[str]:
    """The database against the log: its head is a trusted entry and replaying up to it gives its rows."""
    seq, sha, _ = store.head(conn)
    entries = check.entries
    if seq > len(entries):
        return [f"audit.jsonl: the database has applied {seq} entries but the audit log ends after {len(entries)}"]
    problems = []
    if seq and entries[seq - 1].sha256 != sha:
        problems.append(f"audit.jsonl:{seq}: entry {seq} is not the one the database recorded (the line was "
                        "changed)")
    elif seq > check.trusted:
        problems.append(f"ledger.sqlite: applied entries up to {seq}, past entry {check.trusted}, the last one the "
                        "checks trust")
    replayed = store.connect(":memory:")
    try:
        try:
            store.apply(replayed, entries[:seq], replay=True)
        except (KeyError, TypeError, ValueError, AttributeError, sqlite3.Error) as err:
            return problems + [f"audit.jsonl: the entries up to {seq} cannot be replayed ({type(err).__name__}: "
                               f"{err}): not entries retain writes"]
        problems += [f"audit.jsonl:{r['seq']}: {r['reason']}: refused, the champion was not changed"
                     for r in store.refused(replayed)]
        problems += store.compare(conn, replayed)
    finally:
        replayed.close()
    return problems


def first_line(check: Check, problems: list[str]) -> str:
    return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
