"""The data of a home's report, read from the ledger without changing anything.

The database is opened read-only and no lock is taken, so a report can be made while someone learns into the
home: it then shows the last committed state, and the verification notes the entries not yet applied. Every
number comes from the ledger's own readers (:mod:`retain.ledger.store`, :func:`retain.ledger.diff.score_changes`,
:func:`retain.ledger.verify.verify`), so the report says what ``retain log|show|diff|verify`` say.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.audit import now
from retain.ledger.core import MARKER, Home, is_home
from retain.ledger.diff import score_changes
from retain.ledger.objects import ObjectStore
from retain.ledger.verify import verify

Scores = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Verification:
    """``retain verify`` at the time of the report: problems, notes and what was checked."""

    ok: bool
    problems: list[str]
    notes: list[str]
    counts: dict[str, int]


@dataclass
class Drift:
    """How a version differs from its parent: scores always; weights by tensor hash; measured drift on request.

    ``tensors_changed`` compares the two manifests' per-tensor hashes (no weights are read); it is None for a
    LoRA adapter, whose tensors are not the parent's. ``measured`` is :func:`retain.home.versions.diff`'s
    parameter distance and output KL, filled only when the report is asked to run the models.
    """

    parent: str
    scores: list[dict[str, Any]]
    tensors_changed: int | None
    tensors_total: int
    measured: dict[str, Any] | None = None


@dataclass
class VersionCard:
    """Everything recorded about one version, with its gate decisions and the events that moved it."""

    name: str
    parent: str | None
    status: str
    record: dict[str, Any]
    scores: Scores
    gates: list[dict[str, Any]]
    events: list[dict[str, Any]]
    drift: Drift | None = None

    @property
    def forced(self) -> list[str]:
        """The reasons given for promotions that overrode the gate."""
        return [g["forced_reason"] for g in self.gates if g["decision"] == "forced" and g["forced_reason"]]

    @property
    def failed(self) -> set[str]:
        """Suite entries this version failed in any of its gate decisions."""
        return {c["name"] for g in self.gates for c in g["checks"] if not c["passed"]}


@dataclass
class HomeReport:
    """A home's whole story: versions in creation order, its suite, its gate, its audit events."""

    root: str
    made_at: str
    champion: str
    policy: dict[str, float]
    suite: list[tuple[str, str]]
    versions: list[VersionCard]
    events: list[dict[str, Any]]
    verification: Verification
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def version(self, name: str) -> VersionCard:
        """The card of version ``name``."""
        return next(v for v in self.versions if v.name == name)


def _connect(root: Path) -> sqlite3.Connection:
    """The ledger database, read-only (a report must never change a home)."""
    path = root / "ledger.sqlite"
    if not path.is_file():
        raise RetainError("the ledger database is missing; run retain verify", file=str(path))
    try:
        if os.access(root, os.W_OK):
            conn = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)
            conn.row_factory = sqlite3.Row
        else:  # on a read-only medium SQLite cannot even make the WAL index a read-only reader needs
            conn = store.connect_readonly(path)
        conn.execute("SELECT 1 FROM versions LIMIT 1")
    except sqlite3.DatabaseError as err:
        raise RetainError(f"the ledger database is unreadable ({err}); run retain verify", file=str(path)) from None
    return conn


def _tensor_hashes(objects: ObjectStore, manifest_sha: str) -> dict[str, str] | None:
    """Tensor name -> content hash from a version's manifest; None when the manifest is missing or damaged."""
    if not objects.check(manifest_sha):
        return None
    manifest = json.loads(objects.path(manifest_sha).read_bytes())
    return {name: sha for shard in manifest["safetensors"].values() for name, sha in shard["tensors"]}


def _drift(conn: sqlite3.Connection, objects: ObjectStore, row: dict[str, Any],
           parent: dict[str, Any]) -> Drift:
    scores = score_changes(store.known_scores(conn, parent["name"]), store.known_scores(conn, row["name"]))
    mine = _tensor_hashes(objects, row["manifest_sha256"])
    theirs = _tensor_hashes(objects, parent["manifest_sha256"])
    total = len(mine or {})
    if mine is None or theirs is None or row["kind"] == "adapter":
        return Drift(parent["name"], scores, None, total)
    names = set(mine) | set(theirs)
    return Drift(parent["name"], scores, sum(mine.get(n) != theirs.get(n) for n in names), len(names))


def is_quarantine(event: dict[str, Any]) -> bool:
    """Whether an audit event records lines the guard held back: its type names a quarantine, or it carries a
    non-empty field that does (the guard's own entries, whatever their exact shape)."""
    return "quarantin" in event["type"] or any("quarantin" in key and value
                                                for key, value in event["payload"].items())


def check_home(root: Path) -> None:
    """Raise the user error ``retain report`` gives for a folder that is not a home."""
    if not is_home(root):
        raise RetainError(f"not a retain home (no valid {MARKER}; create one with: retain init HOME)",
                          file=str(root))


def build_home_report(home: str | Path, measure_drift: bool = False) -> HomeReport:
    """Read a home into a :class:`HomeReport`; ``measure_drift`` also runs ``retain diff`` on every version
    against its parent (parameter distance and output KL, which loads both models)."""
    root = Path(home)
    check_home(root)
    checked = verify(root, finish=False)
    conn = _connect(root)
    try:
        objects = ObjectStore(root / "objects", root / "tmp")
        rows = {name: store.version_row(conn, name) for name in store.version_names(conn)}
        versions = []
        for name, row in rows.items():
            assert row is not None
            parent = rows.get(row["parent"]) if row["parent"] else None
            versions.append(VersionCard(
                name=name, parent=row["parent"], status=row["status"], record=row["record"],
                scores=store.known_scores(conn, name), gates=store.gates_of(conn, name),
                events=store.events_of(conn, name),
                drift=_drift(conn, objects, row, parent) if parent else None))
        events = store.events_of(conn)
        report = HomeReport(
            root=str(root), made_at=now(), champion=store.meta(conn, "champion") or "-",
            policy=json.loads(store.meta(conn, "gate") or "{}"),
            suite=[(spec["kind"], spec["name"]) for spec in store.suite_specs(conn)],
            versions=versions, events=events,
            verification=Verification(checked.ok, checked.problems, checked.notes, checked.counts),
            quarantine=[e for e in events if is_quarantine(e)])
    finally:
        conn.close()
    if measure_drift:
        _measure(root, report)
    return report


def _measure(root: Path, report: HomeReport) -> None:
    """Fill every version's ``drift.measured`` with ``retain diff`` against its parent (models run here)."""
    from retain.home.versions import diff

    opened = Home(root)
    opened.conn.close()
    opened.conn = _connect(root)  # models are read through the ledger's reader, but never with a writable handle
    try:
        for card in report.versions:
            if card.drift is None:
                continue
            with tempfile.TemporaryDirectory(prefix="retain-report-") as work:
                result = diff(opened, card.drift.parent, card.name, Path(work))
            card.drift.measured = {"parameters": result["parameters"], "output": result["drift"]}
    finally:
        opened.conn.close()
