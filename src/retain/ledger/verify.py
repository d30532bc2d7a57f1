"""``retain verify``: recompute every hash in a home and say what changed and where.

Four layers, each checked against the one below it:
- outside the home: with a signing key, every entry's MAC and Ed25519 signature (:mod:`retain.ledger.keys`);
  without it, every Ed25519 signature against a public key held here (given, pinned with ``retain key trust``,
  or pinned when this machine first read the home); this machine's witness of the last signed head, and an
  exported anchor when given; a log rewritten with recomputed hashes or extended without the key is found
  here, and a log cut back by the witness or the anchor;
- the audit log: every line canonical, every ``prev_sha256`` the hash of the line before, the newest applied
  line the one the database pins; replaying it refuses promotions without a gate pass or ``--force``;
- the database: replaying the log into an empty database must give the same rows, value for value;
- the objects: every blob hashes to its name, and every blob a version's record uses exists (the records are
  taken from the log, not the database, so a changed row cannot hide a changed blob); unreferenced blobs are
  counted for ``retain gc``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import anchors, audit, keys, lock, store, suite, tensors, trust
from retain.ledger.atomic import write_atomic
from retain.ledger.core import MARKER, Home, is_home
from retain.ledger.hashing import sha256_bytes, sha256_file
from retain.ledger.objects import ObjectStore


@dataclass
class Report:
    """Problems (each ``where: what``) and counts of what was checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_database(root: Path, checked: trust.Check, report: Report) -> None:
    path = root / "ledger.sqlite"
    if not path.is_file():
        report.problems.append("ledger.sqlite: missing (retain verify HOME --repair rebuilds it from the audit log)")
        return
    try:
        # A read-write connection (only read from) is the last one to close, so SQLite removes its -wal and
        # -shm files; a read-only one would leave them in the home.
        conn = sqlite3.connect(str(path)) if os.access(root, os.W_OK) else store.connect_readonly(path)
        conn.row_factory = sqlite3.Row
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                report.problems += [f"ledger.sqlite: {line}" for line in result[:5]]
                return
            seq = store.head(conn)[0]
            if len(checked.entries) > seq:
                held = lock.is_locked(root / "lock")
                report.notes.append(f"{len(checked.entries) - seq} audit entries not yet applied "
                                    + ("(a write is in progress)" if held else "(an interrupted write)"))
            report.problems += trust.check_database(conn, checked)
            report.counts["database rows checked"] = sum(
                conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in store.TABLES)
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        report.problems.append(f"ledger.sqlite: unreadable ({err})")


def references(objects: ObjectStore, records: list[dict[str, Any]], report: Report,
               suite_specs: list[dict[str, Any]] = ()) -> dict[str, str]:
    """Every blob the recorded versions and suite edits use, with what it is; checks manifests and weight
    hashes on the way."""
    refs: dict[str, str] = {}
    for spec in suite_specs:
        refs.update({sha: f"{what} added by retain suite" for sha, what in suite.blobs(spec).items()})
    for record in records:
        name, art = record["version"], record["artifacts"]
        refs[art["manifest_sha256"]] = f"manifest of {name}"
        if art.get("protection_sha256"):
            refs[art["protection_sha256"]] = f"protection state of {name}"
        for d in record["data"]:
            refs[d["sha256"]] = f"data file {d['name']} ({d['role']}) of {name}"
        for spec in record["suite_added"]:
            refs.update({sha: f"{what} added by {name}" for sha, what in suite.blobs(spec).items()})
        if not objects.check(art["manifest_sha256"]):
            continue
        manifest = json.loads(objects.path(art["manifest_sha256"]).read_bytes())
        if tensors.weights_sha256(manifest) != art["weights_sha256"]:
            report.problems.append(f"{objects.relpath(art['manifest_sha256'])}: the weights hash of {name}'s "
                                   "manifest differs from the recorded one")
        refs.update({sha: f"{what} of {name}" for sha, what in tensors.referenced(manifest).items()})
    return refs


def _check_objects(root: Path, records: list[dict[str, Any]], report: Report,
                   suite_specs: list[dict[str, Any]] = ()) -> None:
    objects = ObjectStore(root / "objects", root / "tmp")
    refs = references(objects, records, report, suite_specs)
    stored = set()
    for sha in objects:
        stored.add(sha)
        if sha256_file(objects.path(sha)) != sha:
            what = refs.get(sha, "an unreferenced object")
            report.problems.append(f"{objects.relpath(sha)}: content does not match its hash ({what})")
    for sha, what in sorted(refs.items(), key=lambda kv: kv[1]):
        if sha not in stored:
            report.problems.append(f"{objects.relpath(sha)}: missing ({what})")
    loose = sorted(stored - set(refs))
    if loose:
        size = sum(objects.size(sha) for sha in loose)
        report.notes.append(f"{len(loose)} unreferenced objects ({size} bytes), e.g. {objects.relpath(loose[0])}; "
                            "retain gc HOME removes them")
    report.counts["objects hashed"] = len(stored)
    report.counts["objects referenced"] = len(refs)


def _rebuild(root: Path, entries: list[audit.Entry], report: Report) -> None:
    """Replay ``entries`` into a new database and move it into place; a differing one is kept beside it. The
    caller holds the lock."""
    path = root / "ledger.sqlite"
    fresh = root / "tmp" / f"ledger-{os.getpid()}.sqlite"
    fresh.parent.mkdir(exist_ok=True)
    fresh.unlink(missing_ok=True)
    conn = store.connect(fresh)
    store.apply(conn, audit.committed(entries))
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    if path.exists():
        kept = path.with_name(f"ledger.sqlite.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, kept)
        report.notes.append(f"kept the old database as {kept.name}")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(fresh, path)
    report.notes.append(f"rebuilt ledger.sqlite from {len(audit.committed(entries))} audit entries")


def _repair(root: Path, report: Report) -> None:
    """``--repair``: cut the log back to its last trusted operation, rebuild the database from it and record
    what was done as a ``repaired`` entry (signed with the key, which also moves this machine's witness).

    The cut bytes are kept beside the log as ``audit.jsonl.cut-<time>`` (evidence); the blobs only they used
    become unreferenced (``retain gc``). A log that ends before this machine's witness (entries were removed)
    has nothing to cut: the entry records that the shorter log was accepted. A database that differs from a
    sound log is only rebuilt (nothing is recorded). An unsigned log (with a key set) is left to
    ``retain key sign``; damaged objects are not repaired.
    """
    if not os.access(root, os.W_OK):
        raise RetainError("the home is read-only; --repair needs to write to it", file=str(root))
    from retain.ledger.core import Home, write_marker

    key = keys.load()
    with lock.exclusive(root / "lock", "repair"):
        log = audit.AuditLog(root / "audit.jsonl")
        raw = log.read()
        checked = trust.check_log(root, raw, key)
        if checked.signed and key is None:
            raise RetainError(f"the home is signed and no key is set here; --repair signs what it records "
                              f"({keys.ENV} or {keys.key_path()})", file=str(root))
        keep = audit.committed(checked.entries[:checked.trusted])
        if not keep:
            raise RetainError("no entry of the audit log can be trusted, so there is nothing to rebuild from",
                              file=str(root / "audit.jsonl"))
        end, log_problems = keep[-1].end, list(checked.problems)
        cut = raw[end:]
        record: dict[str, Any] = {"type": "repaired", "kept": keep[-1].seq,
                                  "cut_entries": len(checked.entries) - len(keep), "cut_bytes": len(cut),
                                  "cut_sha256": sha256_bytes(cut),
                                  "problem": log_problems[0] if log_problems else None}
        if cut:
            kept_as = root / f"audit.jsonl.cut-{time.strftime('%Y%m%d-%H%M%S')}"
            write_atomic(kept_as, cut)
            log.truncate(end)
            report.notes.append(f"cut {record['cut_entries']} entries ({len(cut)} bytes) off the audit log after "
                                f"entry {keep[-1].seq}; kept them as {kept_as.name}")
        home_id = checked.ids[len(keep) - 1] if len(checked.ids) >= len(keep) else None
        if home_id != trust.marker(root).get("id"):
            write_marker(root, home_id, checked.signed, key.public.text if key is not None and checked.signed else None)
        _rebuild(root, keep, report)
        if [p for p in log_problems if p != trust.UNSIGNED]:
            home = Home(root)
            if not checked.signed:
                # An unsigned log stays unsigned (a signed entry after unsigned ones that is not ``keyed`` would
                # not verify): retain key sign is the explicit step that vouches for it.
                home.key = None
            try:
                home.commit([record])
            finally:
                home.conn.close()
            report.notes.append(f"recorded the repair as entry {keep[-1].seq + 1}")


def verify(path: str | Path, finish: bool = True, anchor: Path | None = None, repair: bool = False,
           no_key: bool = False, public: keys.PublicKey | None = None) -> Report:
    """Check a whole home. A writer's interrupted commit is finished first, as opening any home does, unless
    ``finish`` is False (a read-only caller such as ``retain report``: the unapplied entries are then noted).

    ``anchor`` is a file from :func:`export_anchor`; ``repair`` cuts the log back to its last trusted entry and
    rebuilds the database (see :func:`_repair`); ``no_key`` accepts a signed home whose signatures cannot be
    checked here (without it that is a problem); ``public``: the public key to check the Ed25519 signatures with
    where no signing key is set (``--public-key``; else ``RETAIN_PUBLIC_KEY``, else this machine's pins).
    """
    root = Path(path)
    if not is_home(root):
        raise RetainError(f"not a retain home (no valid {MARKER})", file=str(root))
    public = public if public is not None else keys.explicit()
    if finish:
        try:
            Home.open(root, public=public, pin_first_use=no_key).conn.close()
        except RetainError:
            pass
    report = _verify(root, anchor, no_key, public)
    if repair and not report.ok:
        _repair(root, report)
        notes = report.notes
        report = _verify(root, anchor, no_key, public)
        report.notes += [n for n in notes if n not in report.notes]
    return report


def _verify(root: Path, anchor: Path | None, no_key: bool, public: keys.PublicKey | None = None) -> Report:
    report = Report()
    log = audit.AuditLog(root / "audit.jsonl")
    seen = trust.witnesses(log.read())
    applied = _applied_bytes(root)
    # verify pins a key nothing here vouched for only when told to (--no-key); readers pin on first use
    checked = trust.check_log(root, log.read(), keys.load(), applied, no_key, seen, public, pin_first_use=no_key)
    report.problems += checked.problems + checked.soft
    report.notes += checked.notes
    report.counts["audit entries"] = len(checked.entries)
    if anchor:
        found = anchors.check_anchor(anchor, checked.entries, keys.load(), checked.public)
        report.problems += found[0]
        report.notes += found[1]
    _check_database(root, checked, report)
    records = [e.payload["record"] for e in checked.entries if e.payload.get("type") == "version_created"]
    report.counts["versions"] = len(records)
    specs = [e.payload["spec"] for e in checked.entries if e.payload.get("type") == "suite_added"]
    _check_objects(root, records, report, specs)
    return report


def _applied_bytes(root: Path) -> int:
    path = root / "ledger.sqlite"
    if not path.is_file():
        return 0
    try:
        # Not ``immutable``: that would skip what the WAL holds and read an older head.
        conn = sqlite3.connect(str(path)) if os.access(root, os.W_OK) else store.connect_readonly(path)
        conn.row_factory = sqlite3.Row
        try:
            return store.head(conn)[2]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0


def export_anchor(path: str | Path, out: Path, no_key: bool = False,
                  public: keys.PublicKey | None = None) -> dict[str, Any]:
    """Verify the home, then write its chain head to ``out`` (kept by the user, outside the home)."""
    report = verify(path, no_key=no_key, public=public)
    if not report.ok:
        raise RetainError(f"the home does not verify ({report.problems[0]}); no anchor was written", file=str(path))
    entries, _ = audit.parse(audit.AuditLog(Path(path) / "audit.jsonl").read())
    return anchors.export_anchor(entries, keys.load(), out)
