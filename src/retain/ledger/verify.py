"""``retain verify``: recompute every hash in a home and say what changed and where.

Three layers, each checked against the one below it:
- the audit log: every line canonical, every ``prev_sha256`` the hash of the line before, the newest applied
  line the one the database pins;
- the database: replaying the log into an empty database must give the same rows, value for value;
- the objects: every blob hashes to its name, and every blob a version's record uses exists (the records are
  taken from the log, not the database, so a changed row cannot hide a changed blob).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import audit, lock, store, tensors
from retain.ledger.core import MARKER, Home, is_home
from retain.ledger.hashing import sha256_file
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


def _check_database(root: Path, entries: list[audit.Entry], chain_ok: bool, report: Report) -> None:
    path = root / "ledger.sqlite"
    if not path.is_file():
        report.problems.append("ledger.sqlite: missing")
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            report.problems += [f"ledger.sqlite: {line}" for line in result[:5]]
            return
        seq, sha, _ = store.head(conn)
        if seq > len(entries):
            where = "the audit log ends" if chain_ok else "the audit log's chain breaks"
            report.problems.append(f"audit.jsonl: the database has applied {seq} entries but {where} after "
                                   f"{len(entries)}")
            return
        if seq and entries[seq - 1].sha256 != sha:
            report.problems.append(f"audit.jsonl:{seq}: entry {seq} is not the one the database recorded "
                                   "(the line was changed)")
        if len(entries) > seq:
            held = lock.is_locked(root / "lock")
            report.notes.append(f"{len(entries) - seq} audit entries not yet applied "
                                + ("(a write is in progress)" if held else "(an interrupted write)"))
        replayed = store.connect(":memory:")
        store.apply(replayed, entries[:seq])
        report.problems += store.compare(conn, replayed)
        report.counts["database rows checked"] = sum(
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in store.TABLES)
        conn.close()
    except sqlite3.DatabaseError as err:
        report.problems.append(f"ledger.sqlite: unreadable ({err})")


def _references(objects: ObjectStore, records: list[dict[str, Any]], report: Report) -> dict[str, str]:
    """Every blob the recorded versions use, with what it is; checks manifests and weight hashes on the way."""
    refs: dict[str, str] = {}
    for record in records:
        name, art = record["version"], record["artifacts"]
        refs[art["manifest_sha256"]] = f"manifest of {name}"
        for d in record["data"]:
            refs[d["sha256"]] = f"data file {d['name']} ({d['role']}) of {name}"
        for spec in record["suite_added"]:
            refs[spec["examples_sha256"]] = f"held-out set of {spec['kind']} {spec['name']} added by {name}"
        if not objects.check(art["manifest_sha256"]):
            continue
        manifest = json.loads(objects.path(art["manifest_sha256"]).read_bytes())
        if tensors.weights_sha256(manifest) != art["weights_sha256"]:
            report.problems.append(f"{objects.relpath(art['manifest_sha256'])}: the weights hash of {name}'s "
                                   "manifest differs from the recorded one")
        refs.update({sha: f"{what} of {name}" for sha, what in tensors.referenced(manifest).items()})
    return refs


def _check_objects(root: Path, records: list[dict[str, Any]], report: Report) -> None:
    objects = ObjectStore(root / "objects", root / "tmp")
    refs = _references(objects, records, report)
    stored = set()
    for sha in objects:
        stored.add(sha)
        if sha256_file(objects.path(sha)) != sha:
            what = refs.get(sha, "an unreferenced object")
            report.problems.append(f"{objects.relpath(sha)}: content does not match its hash ({what})")
    for sha, what in sorted(refs.items(), key=lambda kv: kv[1]):
        if sha not in stored:
            report.problems.append(f"{objects.relpath(sha)}: missing ({what})")
    report.counts["objects hashed"] = len(stored)
    report.counts["objects referenced"] = len(refs)


def verify(path: str | Path, finish: bool = True) -> Report:
    """Check a whole home. A writer's interrupted commit is finished first, as opening any home does, unless
    ``finish`` is False (a read-only caller such as ``retain report``: the unapplied entries are then noted)."""
    root = Path(path)
    if not is_home(root):
        raise RetainError(f"not a retain home (no valid {MARKER})", file=str(root))
    if finish:
        try:
            Home.open(root).conn.close()
        except RetainError:
            pass
    report = Report()
    entries, problems = audit.parse(audit.AuditLog(root / "audit.jsonl").read())
    report.problems += problems
    report.counts["audit entries"] = len(entries)
    _check_database(root, entries, not problems, report)
    records = [e.payload["record"] for e in entries if e.payload.get("type") == "version_created"]
    report.counts["versions"] = len(records)
    _check_objects(root, records, report)
    return report
