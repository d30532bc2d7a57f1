"""The metadata database (SQLite, WAL): an index of the audit log that answers ``log``, ``show`` and ``diff``.

Every row comes from applying audit entries in order, in one transaction per operation, so the database can
always be rebuilt from the log; ``verify`` does exactly that in memory and compares the two row by row.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from retain.ledger.atomic import killpoint
from retain.ledger.audit import Entry
from retain.ledger.hashing import ZERO_SHA, canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, parent TEXT, kind TEXT NOT NULL, method TEXT,
  skill TEXT, seed INTEGER, status TEXT NOT NULL, weights_sha256 TEXT NOT NULL, manifest_sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL, created_seq INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
  version TEXT NOT NULL, suite TEXT NOT NULL, name TEXT NOT NULL, score REAL NOT NULL,
  PRIMARY KEY (version, suite, name));
CREATE TABLE IF NOT EXISTS data_files (
  version TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
  PRIMARY KEY (version, role));
CREATE TABLE IF NOT EXISTS suite (name TEXT PRIMARY KEY, kind TEXT NOT NULL, added_by TEXT NOT NULL,
  spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gates (
  seq INTEGER PRIMARY KEY, version TEXT NOT NULL, champion TEXT NOT NULL, decision TEXT NOT NULL,
  reasons TEXT NOT NULL, checks TEXT NOT NULL, forced_reason TEXT);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, type TEXT NOT NULL, version TEXT, time TEXT NOT NULL, payload TEXT NOT NULL);
"""
TABLES = ("meta", "versions", "scores", "data_files", "suite", "gates", "events")
LEFT_STATUS = {"promoted": "superseded", "rolled_back": "rolled-back"}


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a database on a read-only medium: ``immutable`` skips the locks and WAL index it cannot write."""
    conn = sqlite3.connect(f"file:{path.absolute()}?mode=ro&immutable=1", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (or create) a ledger database in WAL mode with the schema in place."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.row_factory = sqlite3.Row
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def _json(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                 (key, value))


def meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row["value"] if row else default


def head(conn: sqlite3.Connection) -> tuple[int, str, int]:
    """(seq, sha256, byte size) of the last audit entry this database has applied."""
    return (int(meta(conn, "applied_seq", "0")), meta(conn, "head_sha256", ZERO_SHA) or ZERO_SHA,
            int(meta(conn, "audit_bytes", "0")))


def _status(conn: sqlite3.Connection, version: str, status: str) -> None:
    conn.execute("UPDATE versions SET status=? WHERE name=?", (status, version))


def _apply_one(conn: sqlite3.Connection, entry: Entry) -> None:
    payload = entry.payload
    kind = payload["type"]
    conn.execute("INSERT INTO events(seq, type, version, time, payload) VALUES (?, ?, ?, ?, ?)",
                 (entry.seq, kind, payload.get("version"), entry.data["time"], _json(payload)))
    if kind == "init":
        _set_meta(conn, "gate", _json(payload["gate"]))
        _set_meta(conn, "created_at", entry.data["time"])
    elif kind == "version_created":
        record = payload["record"]
        name = record["version"]
        conn.execute(
            "INSERT INTO versions(id, name, parent, kind, method, skill, seed, status, weights_sha256,"
            " manifest_sha256, created_at, created_seq, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (int(name[1:]), name, record["parent"], record["kind"], record["method"], record["skill"],
             record["seed"], "candidate", record["artifacts"]["weights_sha256"],
             record["artifacts"]["manifest_sha256"], record["created_at"], entry.seq, _json(record)))
        for suite in ("skills", "probes"):
            conn.executemany("INSERT INTO scores(version, suite, name, score) VALUES (?, ?, ?, ?)",
                             [(name, suite, k, v) for k, v in sorted(record["scores"][suite].items())])
        conn.executemany("INSERT INTO data_files(version, role, name, sha256, bytes) VALUES (?, ?, ?, ?, ?)",
                         [(name, d["role"], d["name"], d["sha256"], d["bytes"]) for d in record["data"]])
        for spec in record["suite_added"]:
            conn.execute("INSERT OR REPLACE INTO suite(name, kind, added_by, spec) VALUES (?, ?, ?, ?)",
                         (spec["name"], spec["kind"], name, _json(spec)))
    elif kind == "suite_added":
        spec = payload["spec"]
        conn.execute("INSERT OR REPLACE INTO suite(name, kind, added_by, spec) VALUES (?, ?, ?, ?)",
                     (spec["name"], spec["kind"], payload["judges_from"], _json(spec)))
    elif kind == "suite_removed":
        conn.execute("DELETE FROM suite WHERE name=?", (payload["name"],))
    elif kind == "gate_decision":
        conn.execute("INSERT INTO gates(seq, version, champion, decision, reasons, checks, forced_reason)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (entry.seq, payload["version"], payload["champion"], payload["decision"],
                      _json(payload["reasons"]), _json(payload["checks"]), payload.get("forced_reason")))
        if payload["decision"] == "rejected":
            _status(conn, payload["version"], "rejected")
    elif kind in LEFT_STATUS:
        why = _refusal(conn, entry)
        if why:
            _set_meta(conn, "refused", _json(refused(conn) + [{"seq": entry.seq, "reason": why}]))
            return
        old = meta(conn, "champion")
        if old:
            _status(conn, old, LEFT_STATUS[kind])
        _status(conn, payload["version"], "champion")
        _set_meta(conn, "champion", payload["version"])


def refused(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Champion changes the log records but replay refused (``seq`` and why), oldest first."""
    return json.loads(meta(conn, "refused") or "[]")


def _refusal(conn: sqlite3.Connection, entry: Entry) -> str | None:
    """Why a ``promoted`` or ``rolled_back`` entry must not change the champion, or ``None`` if it may.

    A promotion needs its gate pass (no failed check) or a forced decision with its reason, earlier in the same
    operation; only the base model of ``init`` is promoted without one. A rollback returns to an earlier
    champion. One appended line can then no longer promote a rejected version.
    """
    payload = entry.payload
    name, kind = payload.get("version"), payload["type"]
    row = conn.execute("SELECT kind FROM versions WHERE name=?", (name,)).fetchone()
    if row is None:
        return f"{kind} {name}: no such version"
    if kind == "rolled_back":
        skip = {r["seq"] for r in refused(conn)}
        earlier = conn.execute("SELECT seq FROM events WHERE version=? AND type IN ('promoted', 'rolled_back') "
                               "AND seq<?", (name, entry.seq)).fetchall()
        return None if {r["seq"] for r in earlier} - skip else f"rolled back to {name}, which was never champion"
    if row["kind"] == "base" and meta(conn, "champion") is None:
        return None
    gate = conn.execute("SELECT decision, reasons, forced_reason FROM gates WHERE version=? AND seq>=? AND seq<? "
                        "ORDER BY seq DESC LIMIT 1", (name, entry.data["op"], entry.seq)).fetchone()
    if gate is None:
        return f"promoted {name} without a gate decision in the same operation"
    if gate["decision"] == "accepted" and json.loads(gate["reasons"]) == []:
        return None
    if gate["decision"] == "forced" and (gate["forced_reason"] or "").strip():
        return None
    return f"promoted {name} although its gate decision is {gate['decision']!r} with no recorded --force reason"


def apply(conn: sqlite3.Connection, entries: list[Entry], replay: bool = False) -> None:
    """Apply one or more committed operations in a single transaction (all of them or none). ``replay``: into
    a scratch database a check compares with (the crash tests' kill point is not there)."""
    if not entries:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for entry in entries:
            _apply_one(conn, entry)
        last = entries[-1]
        _set_meta(conn, "applied_seq", str(last.seq))
        _set_meta(conn, "head_sha256", last.sha256)
        _set_meta(conn, "audit_bytes", str(last.end))
        if not replay:
            killpoint("in_db_transaction")
        conn.execute("COMMIT")
    except BaseException:
        # SQLite has already rolled back on some errors (a full disk); then there is nothing left to undo.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _rows(conn: sqlite3.Connection, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [r["name"] for r in conn.execute(f"PRAGMA table_info({table})") if r["pk"]]
    return {tuple(row[k] for k in keys): dict(row) for row in conn.execute(f"SELECT * FROM {table}")}


def compare(db: sqlite3.Connection, replayed: sqlite3.Connection) -> list[str]:
    """Every row or value where the database differs from the audit log replayed into ``replayed``."""
    problems = []
    for table in TABLES:
        have, want = _rows(db, table), _rows(replayed, table)
        for key in sorted(set(have) | set(want), key=repr):
            where = f"ledger.sqlite: table {table}, row {', '.join(map(str, key))}"
            if key not in want:
                problems.append(f"{where}: not in the audit log")
            elif key not in have:
                problems.append(f"{where}: missing (the audit log records it)")
            else:
                for column, value in want[key].items():
                    if have[key][column] != value:
                        problems.append(f"{where}, column {column}: {_short(have[key][column])} where the audit "
                                        f"log gives {_short(value)}")
    return problems


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def version_row(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM versions WHERE name=?", (name,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["record"] = json.loads(out["record"])
    return out


def version_names(conn: sqlite3.Connection) -> list[str]:
    return [r["name"] for r in conn.execute("SELECT name FROM versions ORDER BY id")]


def suite_specs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The regression suite: probes pinned at init plus the held-out set of every skill learned since."""
    return [json.loads(r["spec"]) for r in conn.execute("SELECT spec FROM suite ORDER BY kind, name")]


def suite_event_specs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every suite entry ever added by ``retain suite add`` (removed ones included: history keeps them)."""
    return [json.loads(r["payload"])["spec"] for r in conn.execute(
        "SELECT payload FROM events WHERE type='suite_added' ORDER BY seq")]


def gates_of(conn: sqlite3.Connection, version: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM gates WHERE version=? ORDER BY seq", (version,)).fetchall()
    return [dict(r, reasons=json.loads(r["reasons"]), checks=json.loads(r["checks"])) for r in rows]


def events_of(conn: sqlite3.Connection, version: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM events" + (" WHERE version=?" if version else "") + " ORDER BY seq"
    rows = conn.execute(query, (version,) if version else ()).fetchall()
    return [dict(r, payload=json.loads(r["payload"])) for r in rows]


def known_scores(conn: sqlite3.Connection, name: str) -> dict[str, dict[str, float]]:
    """A version's scores: its own record, completed by gates that measured it as the champion."""
    row = version_row(conn, name)
    assert row is not None, name
    scores = {suite: dict(values) for suite, values in row["record"]["scores"].items()}
    for event in events_of(conn):
        payload = event["payload"]
        if payload["type"] == "gate_decision" and payload["champion"] == name:
            for suite, values in payload["champion_scores"].items():
                for skill, value in values.items():
                    scores[suite].setdefault(skill, value)
    return scores
