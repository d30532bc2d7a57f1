"""A home: the folder where one evolving model lives, and the only code that writes to it.

Layout::

    HOME/home.json       marker (format, home id)       HOME/ledger.sqlite  metadata (WAL), rebuilt from the log
    HOME/audit.jsonl     hash-chained event log          HOME/objects/       content-addressed blobs
    HOME/lock            one writer at a time            HOME/tmp/           a writer's temporary files

A write goes: blobs (temp file, fsync, rename) -> audit entries of the operation (one append, fsync) ->
one SQLite transaction. The audit append is the commit point: a crash before it leaves only unreferenced
blobs; a crash after it is finished on the next open by applying the committed entries to the database.
Every command checks the home first (:mod:`retain.ledger.trust`): a reader that finds a problem reports it and
applies nothing; a writer refuses until ``retain verify HOME --repair``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retain.data.skills import Skill
from retain.errors import RetainError
from retain.ledger import audit, keys, lock, store, suite, tensors, trust
from retain.ledger.atomic import fsync_dir, killpoint, write_atomic
from retain.ledger.audit import AuditLog, Entry
from retain.ledger.gate import GatePolicy
from retain.ledger.hashing import canonical_json, sha256_bytes
from retain.ledger.objects import ObjectStore

FORMAT = "retain-home/1"
MARKER = "home.json"
# Readers finish an interrupted commit under the lock for an instant; a writer waits this long rather than fail.
WRITER_GRACE_S = 2.0
# Writes ``parent + adapter`` (two save_pretrained folders) into ``out`` as one full model: what a LoRA version's
# full model takes (retain.models.merge.merge_adapter, handed in by the caller; the ledger never loads a model).
Merge = Callable[[Path, Path, Path], None]


def _clean_stale_builds(root: Path) -> None:
    """Remove hidden build folders a killed ``init`` of ``root`` left beside it (their lock is free)."""
    for stale in root.parent.glob(f".{root.name}.init-*"):
        try:
            if stale.is_dir() and not lock.is_locked(stale / "lock"):
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def is_home(path: str | Path) -> bool:
    """Whether ``path`` is a home made by ``retain init``."""
    marker = Path(path) / MARKER
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_marker(root: Path, home_id: str | None, signed: bool, public_key: str | None = None) -> None:
    """``home.json``: the format, the home's id (fixed at init; a copy takes its own at its first signed write),
    whether it is signed (so a reader without the key knows an unsigned log was stripped) and the public key of
    its Ed25519 signatures (:mod:`retain.ledger.keys`; also named in a signed entry)."""
    data: dict[str, Any] = {"format": FORMAT}
    if home_id:
        data["id"] = home_id
    if signed:
        data["signed"] = True
        if public_key:
            data["public_key"] = public_key
    write_atomic(root / MARKER, canonical_json(data) + b"\n")


def check_new_home(root: Path) -> None:
    """Raise unless ``root`` can become a new home (checked before any expensive work starts)."""
    if is_home(root):
        raise RetainError("already a retain home", file=str(root))
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise RetainError("exists and is not an empty folder", file=str(root))
    if not root.absolute().parent.is_dir():
        raise RetainError("parent folder does not exist", file=str(root.absolute().parent))


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or quota) is full; libraries that wrap the OSError keep its text."""
    text = str(err)
    return (isinstance(err, OSError) and err.errno in DISK_FULL) or "No space left on device" in text \
        or "database or disk is full" in text


class Home:
    """An open home. Reading needs nothing; every change happens inside :meth:`writing`.

    A home on a read-only medium (or without write permission) opens its database read-only and serves every
    read; only :meth:`writing` refuses.
    """

    def __init__(self, root: Path, create: bool = False, public: keys.PublicKey | None = None,
                 pin_first_use: bool = True) -> None:
        self.root = root
        # Whether a check pins a public key only the home names (a reader's trust on first use); retain verify
        # without --no-key does not (it reports it).
        self.pin_first_use = pin_first_use
        self.tmp = root / "tmp"
        self.objects = ObjectStore(root / "objects", self.tmp)
        self.audit = AuditLog(root / "audit.jsonl")
        self.key = keys.load()
        # Where no signing key is set: the public key given for this command (else the pins decide; see trust).
        self.public = public if public is not None else keys.explicit()
        # Whether the last write check named the public key of a home signed before Ed25519 signatures.
        self.named_key = False
        self.id: str | None = trust.marker(root).get("id")
        # Why this home cannot be written now (``None`` when it can); reads work either way.
        self.unwritable: str | None = None
        if not os.access(root, os.W_OK):
            self.unwritable = "the home is read-only (read-only medium or no write permission)"
        db = root / "ledger.sqlite"
        if not create and not db.is_file():
            raise RetainError("the ledger database is missing; retain verify HOME --repair rebuilds it from the "
                              "audit log", file=str(db))
        try:
            self.conn = store.connect_readonly(db) if self.unwritable else store.connect(db)
        except sqlite3.OperationalError as err:
            if create or shutil.disk_usage(root).free > (1 << 20):
                raise RetainError(f"the ledger database cannot be opened ({err}); run retain verify",
                                  file=str(db)) from None
            # SQLite needs room for its WAL index even to read; on a full disk read the file as it stands.
            self.unwritable = "no space left on the device"
            self.conn = store.connect_readonly(db)
        except sqlite3.DatabaseError as err:
            raise RetainError(f"the ledger database is damaged ({err}); run retain verify",
                              file=str(db)) from None

    @property
    def readonly(self) -> bool:
        return self.unwritable is not None

    # -- opening and creating ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, public: keys.PublicKey | None = None, pin_first_use: bool = True) -> Home:
        """Open an existing home after checking it (:mod:`retain.ledger.trust`); finish a commit a crashed
        writer left half-applied if no one is writing.

        A home whose check fails is reported and nothing is read from it or applied to its database; only
        entries the check trusts are ever applied (never a signed one that no key here can check: without the
        signing key, only entries whose Ed25519 signatures check with a public key held here).
        """
        root = Path(path)
        if not is_home(root):
            raise RetainError("not a retain home (create one with: retain init HOME)", file=str(root))
        home = cls(root, public=public, pin_first_use=pin_first_use)
        checked = home.check()
        if checked.problems:
            home.conn.close()
            raise RetainError(f"the home does not verify: {trust.first_line(checked, checked.problems)}; nothing "
                              "was read or applied (retain verify HOME lists every problem; retain verify HOME "
                              "--repair cuts the log back to its last trusted entry)", file=str(root))
        pending = audit.committed(checked.entries[store.head(home.conn)[0]:checked.trusted])
        if pending and checked.unchecked:
            home.conn.close()
            raise RetainError(f"{len(pending)} committed audit entries are signed and no key is set here to check "
                              f"them, so they were not applied (set {keys.ENV} or {keys.key_path()})",
                              file=str(root))
        if home.readonly:
            return home
        if pending or checked.torn or (home.tmp.is_dir() and any(home.tmp.iterdir())):
            # A writer killed mid-commit or mid-training is finished or cleaned by whoever comes next.
            try:
                with lock.exclusive(root / "lock", "recover"):
                    home._recover()
                    home._clean_tmp()
            except (RetainError, OSError, sqlite3.Error):
                # No room or no lock to finish it now: read what the database has; the next writer finishes.
                pass
        return home

    def check(self, no_key: bool = False) -> trust.Check:
        """The home's check (log, signatures, id, witness, database); see :mod:`retain.ledger.trust`.

        Read in the order a writer writes backwards (witness, then the database in one read transaction, then
        the log), so a commit running meanwhile never looks like a cut or a database ahead of its log.
        """
        seen = trust.witnesses(self.audit.read())
        try:
            self.conn.execute("BEGIN")
            try:
                applied = store.head(self.conn)[2]
                checked = trust.check_log(self.root, self.audit.read(), self.key, applied, no_key, seen,
                                          self.public, self.pin_first_use)
                checked.problems += trust.check_database(self.conn, checked)
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise RetainError(f"the ledger database is damaged ({err}); run retain verify",
                              file=str(self.root / "ledger.sqlite")) from None
        return checked

    @classmethod
    def create(cls, path: str | Path, events: list[dict[str, Any]],
               fill: Callable[[Home], list[dict[str, Any]]]) -> Home:
        """Build a new home in a hidden sibling folder, then rename it into place in one step.

        ``fill(home)`` stores the base model and returns the events that follow ``events``; a crash at any
        point leaves either no home or a complete one.
        """
        root = Path(path).absolute()
        check_new_home(root)
        _clean_stale_builds(root)
        building = root.parent / f".{root.name}.init-{uuid.uuid4().hex[:8]}"
        try:
            building.mkdir()
            # The build holds its own lock, so a later init can tell a killed build's leftovers from a live one.
            with lock.exclusive(building / "lock", "init"):
                for sub in ("objects", "tmp"):
                    (building / sub).mkdir()
                home_id = uuid.uuid4().hex
                key = keys.load()
                public = key.public.text if key is not None else None
                write_marker(building, home_id, key is not None, public)
                home = cls(building, create=True)
                named = {"home_id": home_id, **({"public_key": public} if public else {})}
                first = [{**events[0], **named}] if events and events[0].get("type") == "init" else events[:1]
                home.commit(first + events[1:] + fill(home))
                home.conn.close()
                shutil.rmtree(home.tmp)
                home.tmp.mkdir()
                killpoint("init_before_rename")
                try:
                    os.rename(building, root)
                except OSError:
                    raise RetainError("was created by someone else meanwhile", file=str(root)) from None
            fsync_dir(root.parent)
        except (OSError, RuntimeError) as err:
            if disk_full(err):
                raise RetainError("no space left on the device; nothing was created", file=str(root)) from None
            raise
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
        opened = cls.open(root)
        opened._witness()
        return opened

    # -- writing -------------------------------------------------------------------------------------
    @contextmanager
    def writing(self, command: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the write lock; start from a clean, fully applied, undamaged state.

        If the block fails before its commit, the blobs it stored and its temporary files are removed (nothing
        references them); a full disk becomes one line.
        """
        if self.unwritable:
            raise RetainError(f"{self.unwritable}; {command} needs to write to the home", file=str(self.root))
        with lock.exclusive(self.root / "lock", command, max(timeout, WRITER_GRACE_S)):
            self._clean_tmp()
            self._recover()
            try:
                self._check_writable(command)
            except (OSError, sqlite3.Error) as err:
                # Giving a copy its id is a commit of its own; on a full disk the command has recorded nothing.
                if disk_full(err):
                    raise RetainError(f"no space left on the device; {command} recorded nothing",
                                      file=str(self.root)) from None
                raise
            self.objects.new.clear()
            committed_before = store.head(self.conn)[0]
            try:
                yield
            except BaseException as err:
                committed = (store.head(self.conn)[0] != committed_before
                             or self.audit_size() != store.head(self.conn)[2])
                if not committed:
                    self.objects.discard_new()
                self._clean_tmp()
                if disk_full(err) and committed:
                    raise RetainError(f"no space left on the device after {command} was committed to the audit "
                                      "log; the database catches up on the next command once there is space",
                                      file=str(self.root)) from None
                if disk_full(err):
                    raise RetainError(f"no space left on the device; {command} recorded nothing",
                                      file=str(self.root)) from None
                if committed and isinstance(err, sqlite3.Error):
                    # A file-size limit (EFBIG) or an I/O error on the database after the commit point.
                    raise RetainError(f"{command} was committed to the audit log but the database could not be "
                                      f"updated ({err}); the next command applies it", file=str(self.root)) from None
                raise
            finally:
                self.objects.new.clear()

    def audit_size(self) -> int:
        return self.audit.path.stat().st_size if self.audit.path.exists() else 0

    @contextmanager
    def work_dir(self, name: str) -> Iterator[Path]:
        """A scratch folder inside the home (``HOME/tmp/<name>-<random>``), removed when the block ends.

        Same file system as the objects, so nothing spills into the system temp folder; after a kill, the next
        command that opens the home removes what is left (see :meth:`open`).
        """
        self.tmp.mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _clean_tmp(self) -> None:
        """Empty ``HOME/tmp`` (only ever called under the write lock, so no live writer owns what is there)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(exist_ok=True)

    def commit(self, events: list[dict[str, Any]]) -> list[Entry]:
        """Append one operation's events to the audit log, then apply them to the database.

        With a signing key (:mod:`retain.ledger.keys`) every entry carries its MAC, and this machine's witness
        moves to the new head.
        """
        seq, sha, size = store.head(self.conn)
        entries, data = audit.encode(events, seq, sha, size, self.key, self.id)
        killpoint("before_audit")
        self.audit.append(data)
        killpoint("after_audit")
        store.apply(self.conn, entries)
        killpoint("after_db")
        self._witness()
        return entries

    def _witness(self) -> None:
        """Move this machine's witness of the home to the head just committed (never before a commit)."""
        if self.key is None:
            return
        seq, sha, _ = store.head(self.conn)
        if seq:
            first = self.audit.read().split(b"\n", 1)[0]
            keys.record_witness(self.root, self.id or sha256_bytes(first), seq, sha)

    def _recover(self) -> None:
        """Apply operations the log committed and the check trusts but the database missed; cut a torn
        operation off the log.

        Only bytes after the applied head are touched, and only when the whole home checks: a log that was
        edited is evidence for ``verify``, never something to repair or apply.
        """
        checked = self.check()
        if checked.blocking("key sign"):
            return
        seq, _, size = store.head(self.conn)
        if checked.unchecked and checked.entries[seq:]:
            return
        good = audit.committed(checked.entries[seq:checked.trusted])
        store.apply(self.conn, good)
        end = good[-1].end if good else size
        if self.audit_size() > end and checked.trusted == len(checked.entries):
            self.audit.truncate(end)

    def _check_writable(self, command: str) -> None:
        """Refuse to write on a home whose check fails; give a copy of a signed home an id of its own."""
        checked = self.check()
        problems = checked.blocking(command) + checked.soft
        if problems:
            raise RetainError(f"{trust.first_line(checked, problems)}; {command} does not write to a home that "
                              "does not verify (retain verify HOME lists every problem; retain verify HOME --repair "
                              "cuts the log back to its last trusted entry)", file=str(self.root))
        if checked.signed and self.key is None:
            # A public key checks the signatures; only the signing key makes them.
            kid = next((e.data["key"] for e in reversed(checked.entries) if "key" in e.data), None)
            raise RetainError(f"the audit log is signed (key {kid}) but no key is set here to sign what {command} "
                              f"writes ({keys.ENV} or {keys.key_path()}); {command} does not write to it",
                              file=str(self.root))
        public = self.key.public.text if self.key is not None and checked.signed else None
        if checked.pending_id:
            write_marker(self.root, checked.pending_id, checked.signed, public)
            self.id = checked.pending_id
        if self.key is None or not checked.signed:
            return
        named = trust.announced(checked.entries)
        wid = trust.witness_id(checked.entries, self.id)
        record = keys.witness(wid) if wid else None
        elsewhere = record is not None and not keys.same_place(record, self.root)
        if self.id is None or elsewhere:
            # A copy this machine signed elsewhere (or a home made before ids): entries written here from now on
            # are signed for an id of this home alone, so they cannot be spliced into the other copy.
            new, old = uuid.uuid4().hex, self.id
            why = (f"a copy of home {old} (this machine last signed it at {record['home']}) takes its own id"
                   if elsewhere else "the home gets an id (made before home ids)")
            self.id = new
            try:
                self.commit([{"type": "home_id", "id": new, "previous": old, "place": str(self.root.resolve()),
                              "public_key": public, "reason": why}])
            except BaseException:
                self.id = old
                raise
            killpoint("after_home_id")
            write_marker(self.root, new, True, public)
            return
        if not named:
            # A home signed before Ed25519 signatures names its public key once, signed (see retain.ledger.keys).
            self.commit([{"type": "public_key", "public_key": public,
                          "reason": "the public key of this home's Ed25519 signatures, from this entry on"}])
            self.named_key = True
        mark = trust.marker(self.root)
        if not mark.get("signed") or mark.get("public_key") != public:
            write_marker(self.root, self.id, True, public)

    # -- reading -------------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """``v2``, ``2`` or ``champion`` -> the version's name; unknown versions are a user error."""
        name = self.champion() if ref == "champion" else (ref if ref.startswith("v") else f"v{ref}")
        if store.version_row(self.conn, name) is None:
            known = ", ".join(store.version_names(self.conn))
            raise RetainError(f"unknown version {ref!r} (known: {known})", file=str(self.root))
        return name

    def version(self, ref: str) -> dict[str, Any]:
        row = store.version_row(self.conn, self.resolve(ref))
        assert row is not None
        return row

    def versions(self) -> list[dict[str, Any]]:
        return [self.version(name) for name in store.version_names(self.conn)]

    def champion(self) -> str:
        name = store.meta(self.conn, "champion")
        if not name:
            raise RetainError("the home has no champion (the ledger database is damaged); run retain verify",
                              file=str(self.root))
        return name

    def policy(self) -> GatePolicy:
        return GatePolicy(**json.loads(store.meta(self.conn, "gate") or "{}"))

    def next_version(self) -> str:
        return f"v{len(store.version_names(self.conn)) + 1}"

    def suite(self) -> list[Skill]:
        """The whole regression suite, probes first, loaded from the home (hashes checked)."""
        return [suite.load(self.objects, spec) for spec in store.suite_specs(self.conn)]

    def manifest(self, ref: str) -> tensors.Manifest:
        sha = self.version(ref)["manifest_sha256"]
        return json.loads(self.objects.get(sha))

    def materialize(self, ref: str, out: Path, merge: Merge) -> Path:
        """Write the version's full model as a save_pretrained folder: a LoRA version's adapter is ``merge``d
        onto its parent's full model (itself materialised the same way)."""
        row = self.version(ref)
        out.mkdir(parents=True, exist_ok=True)
        if row["kind"] != "adapter":
            tensors.materialize(self.objects, self.manifest(row["name"]), out)
            return out
        # A writer's scratch stays inside the home (cleaned after a kill); a reader's goes to the system temp.
        inside = out.absolute().is_relative_to(self.tmp.absolute())
        with tempfile.TemporaryDirectory(prefix="merge-", dir=out.parent if inside else None) as work:
            parent, adapter = Path(work) / "parent", Path(work) / "adapter"
            adapter.mkdir()
            self.materialize(row["parent"], parent, merge)
            tensors.materialize(self.objects, self.manifest(row["name"]), adapter)
            merge(parent, adapter, out)
        return out

    # -- storing -------------------------------------------------------------------------------------
    def store_model(self, folder: Path) -> dict[str, Any]:
        """Store a model or adapter folder per tensor; return the version's ``artifacts`` record."""
        before = self.objects.bytes_written
        manifest = tensors.snapshot(folder, self.objects.put)
        manifest_sha = self.objects.put(canonical_json(manifest))
        # "bytes" is what the version would cost alone; "bytes_new" what it cost here after sharing.
        return {"manifest_sha256": manifest_sha, "weights_sha256": tensors.weights_sha256(manifest),
                "tensors": sum(len(s["tensors"]) for s in manifest["safetensors"].values()),
                "bytes": tensors.manifest_bytes(self.objects, manifest) + self.objects.size(manifest_sha),
                "bytes_new": self.objects.bytes_written - before}

    def store_file(self, path: Path, role: str, keep_path: bool = True) -> dict[str, Any]:
        """Keep a data file in the home and return its record (role, name, original path, SHA-256, size)."""
        data = path.read_bytes()
        return {"role": role, "name": path.name, "path": str(path.resolve()) if keep_path else None,
                "sha256": self.objects.put(data), "bytes": len(data)}

    def store_suite_entry(self, skill: Skill, kind: str) -> dict[str, Any]:
        return suite.store(self.objects, skill, kind)
