"""Feedback on what a home's champion answered, and learning from it.

A served answer is kept in the home's *served store* (``HOME/served.sqlite``, not part of the ledger: most
answers never get feedback) under its response id. Feedback names that id, gives a rating (-1 bad, 0 neutral,
1 good) and optionally a correction, the answer the user wanted. Recording it is one committed audit event
(``type: feedback``, signed like every entry when the home has a key) that holds the conversation (the
messages, the answer, the version that gave it) with its SHA-256, so the hash chain covers it and ``retain gc``
has nothing to collect; the feedback's id is the hash of what it says, so recording the same feedback twice
records it once. Nothing trains by itself.

``retain learn HOME --from-feedback`` turns every correction not yet consumed into an SDFT example: the original
conversation is the student's prompt and the correction is the demonstration the teacher sees (Shenfeld et al.,
"Self-Distillation Enables Continual Learning", 2026). The examples go through :func:`learn_in_home` unchanged
(guard, protection, gate); the version records the feedback ids it consumed (line ``i`` of its data file is
``consumed[i - 1]``), so the guard's quarantined lines name feedback too. Feedback a promoted version learned is
consumed and never offered again; feedback the guard quarantined never is either; feedback a version the gate
rejected trained on is offered to the next learn again (that version changed nothing), with the corrections
given since, so corrections add up until a candidate passes the gate. A good rating (1) without a correction on
an answer the server gave joins the learn's rehearsal buffer with that answer as the stored target (what already
works is kept as it is); the version records it, and its status is then ``kept``.

When the home is busy (a learn holds its lock for minutes), the server keeps feedback *pending* in the served
store and commits it as soon as the lock is free (:func:`flush_pending`).

The served store is bounded: answers older than ``keep_days`` (``retain serve --keep-served-days``, 30 by
default) are dropped as new ones arrive. Feedback carries its own copy of the conversation, so an answer that
was rated is kept in the audit log whatever happens to the store; an answer past the window can no longer be
rated (the feedback route says so).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.core import Home
from retain.ledger.hashing import canonical_json, sha256_json

SERVED_DB = "served.sqlite"
RATINGS = (-1, 0, 1)
MAX_CORRECTION_CHARS = 20_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS served (id TEXT PRIMARY KEY, time REAL NOT NULL, version TEXT NOT NULL,
  record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS served_time ON served(time);
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, time REAL NOT NULL, body TEXT NOT NULL);
"""
KEEP_DAYS = 30.0


class ServedStore:
    """The answers a server gave (by response id) and the feedback waiting for the home's lock.

    One short connection per call, so any thread (or process) may use it. Answers older than ``keep_days`` are
    dropped when a new one is kept (None: kept forever); pending feedback is never dropped.
    """

    def __init__(self, path: Path, keep_days: float | None = KEEP_DAYS) -> None:
        self.path = path
        self.keep_days = keep_days
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    @classmethod
    def of(cls, home: str | Path, keep_days: float | None = KEEP_DAYS) -> ServedStore:
        return cls(Path(home) / SERVED_DB, keep_days)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        finally:
            conn.close()

    def put(self, record: dict[str, Any]) -> None:
        """Keep one served answer: ``record`` holds ``response_id``, ``version``, ``kind``, ``messages`` (or
        ``prompt``) and ``answer``."""
        now = time.time()
        with self._conn() as conn:
            conn.execute("INSERT OR REPLACE INTO served(id, time, version, record) VALUES (?, ?, ?, ?)",
                         (record["response_id"], now, record["version"], json.dumps(record)))
            if self.keep_days is not None:
                conn.execute("DELETE FROM served WHERE time < ?", (now - self.keep_days * 86400.0,))

    def count(self) -> int:
        """How many answers the store holds."""
        with self._conn() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM served").fetchone()[0])

    def get(self, response_id: str) -> dict[str, Any] | None:
        with self._conn() as conn:
            row = conn.execute("SELECT record FROM served WHERE id=?", (response_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def hold(self, body: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute("INSERT OR IGNORE INTO pending(id, time, body) VALUES (?, ?, ?)",
                         (body["id"], time.time(), json.dumps(body)))

    def pending(self) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return [json.loads(r[0]) for r in conn.execute("SELECT body FROM pending ORDER BY time")]

    def release(self, feedback_id: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM pending WHERE id=?", (feedback_id,))


def check_rating(rating: Any, field: str = "rating") -> int:
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATINGS:
        raise RetainError(f"must be -1 (bad), 0 or 1 (good), got {rating!r}", field=field)
    return rating


def check_correction(correction: Any, field: str = "correction") -> str | None:
    if correction is None:
        return None
    if not isinstance(correction, str) or not correction.strip():
        raise RetainError("must be a non-empty string (the answer you wanted)", field=field)
    if len(correction) > MAX_CORRECTION_CHARS:
        raise RetainError(f"is {len(correction)} characters, over the limit of {MAX_CORRECTION_CHARS}", field=field)
    return correction


def feedback_body(conversation: dict[str, Any], rating: Any, correction: Any = None,
                  user: str | None = None, source: str = "api") -> dict[str, Any]:
    """The feedback event's body for a served ``conversation``, checked; its id is the hash of what it says."""
    rating, correction = check_rating(rating), check_correction(correction)
    said = {"response_id": conversation["response_id"], "conversation_sha256": sha256_json(conversation),
            "rating": rating, "correction": correction, "user": user}
    return {"type": "feedback", "id": "fb-" + sha256_json(said)[:24], **said, "served_by": conversation["version"],
            "source": source, "conversation": conversation}


def _recorded_ids(home: Home) -> set[str]:
    return {json.loads(r["payload"])["id"] for r in home.conn.execute(
        "SELECT payload FROM events WHERE type='feedback'")}


def commit_feedback(home: str | Path, bodies: list[dict[str, Any]], lock_timeout: float = 0.0) -> list[str]:
    """Record feedback (bodies from :func:`feedback_body`) in one audit commit, each event holding its
    conversation and that conversation's SHA-256. Feedback already recorded is skipped. Returns the ids recorded
    now."""
    opened = Home.open(home)
    with opened.writing("feedback", lock_timeout):
        known = _recorded_ids(opened)
        events, seen = [], set()
        for body in bodies:
            if body["id"] in known or body["id"] in seen:
                continue
            seen.add(body["id"])
            if sha256_json(body["conversation"]) != body["conversation_sha256"]:
                raise RetainError("the conversation does not hash to what the feedback names", field="conversation")
            events.append(body)
        if events:
            opened.commit(events)
    return [e["id"] for e in events]


def flush_pending(home: str | Path) -> int:
    """Commit the feedback a server held back while the home was busy; returns how many are still pending."""
    served = ServedStore.of(home)
    waiting = served.pending()
    if not waiting:
        return 0
    try:
        commit_feedback(home, waiting, lock_timeout=0.0)
    except RetainError:
        return len(waiting)
    for body in waiting:
        served.release(body["id"])
    return 0


def add_feedback(home: str | Path, *, response_id: str | None = None, prompt: str | None = None,
                 answer: str | None = None, rating: int = -1, correction: str | None = None,
                 user: str | None = None, lock_timeout: float = 0.0) -> str:
    """``retain feedback HOME add``: feedback on a served response (by id) or on a prompt and answer given
    here (as answered by the champion now). Returns the feedback id."""
    opened = Home.open(home)
    if response_id is not None:
        if prompt is not None or answer is not None:
            raise RetainError("give either a response id or a prompt and answer, not both", field="--prompt")
        conversation = ServedStore.of(opened.root).get(response_id) if (opened.root / SERVED_DB).exists() else None
        if conversation is None:
            raise RetainError(f"no served response has the id {response_id!r} (retain serve records them)",
                              field="--response")
    else:
        if not prompt or not prompt.strip():
            raise RetainError("needs --response ID, or --prompt TEXT (with --answer)", field="--prompt")
        conversation = {"response_id": "cli-" + sha256_json([prompt, answer, time.time()])[:24],
                        "version": opened.champion(), "kind": "chat",
                        "messages": [{"role": "user", "content": prompt}], "answer": answer or ""}
    body = feedback_body(conversation, rating, correction, user, source="cli")
    commit_feedback(opened.root, [body], lock_timeout)
    return body["id"]


def _uses(home: Home) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
    """How each learned feedback was used: id -> (``consumed`` or ``quarantined``, the version), and id -> the
    rejected versions that trained on it. A version the gate rejected changed nothing, so what it trained on is
    offered again; what the guard quarantined never is."""
    used: dict[str, tuple[str, str]] = {}
    tried: dict[str, list[str]] = {}
    for name in store.version_names(home.conn):
        row = home.version(name)
        record = row["record"]
        ids = record.get("config", {}).get("feedback", {}).get("consumed", [])
        for fid in record.get("config", {}).get("protection", {}).get("rehearsed_feedback", []):
            if row["status"] == "rejected":
                tried.setdefault(fid, []).append(name)
            else:
                used[fid] = ("kept", name)
        screen = record.get("screen") or {}
        held = {line["line"] for line in screen.get("flagged", [])} if screen.get("quarantined") else set()
        for number, fid in enumerate(ids, start=1):
            if number in held:
                used[fid] = ("quarantined", name)
            elif row["status"] == "rejected":
                tried.setdefault(fid, []).append(name)
            else:
                used[fid] = ("consumed", name)
    return used, tried


def list_feedback(home: str | Path) -> list[dict[str, Any]]:
    """Every recorded feedback, oldest first, with its conversation and status: ``new`` (with the rejected
    versions that ``tried`` it), ``consumed`` by the version that learned it, ``kept`` in the rehearsal of the
    version that rehearses it (a good rating), or ``quarantined`` by the guard in a version; feedback still
    ``pending`` in the served store last."""
    opened = Home.open(home)
    used, tried = _uses(opened)
    out = []
    for row in opened.conn.execute("SELECT seq, time, payload FROM events WHERE type='feedback' ORDER BY seq"):
        event = json.loads(row["payload"])
        status, by = used.get(event["id"], ("new", None))
        out.append({**event, "seq": row["seq"], "time": row["time"], "status": status, "by": by,
                    "tried": [] if by else tried.get(event["id"], [])})
    if (opened.root / SERVED_DB).exists():
        for body in ServedStore.of(opened.root).pending():
            out.append({**body, "seq": None, "time": None, "status": "pending", "by": None, "tried": []})
    return out


def export_feedback(home: str | Path, out: Path) -> int:
    """Write every recorded feedback with its conversation as JSONL; returns the number of lines."""
    items = [f for f in list_feedback(home) if f["status"] != "pending"]
    with open(out, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, sort_keys=True) + "\n")
    return len(items)


def example_row(conversation: dict[str, Any], correction: str) -> dict[str, Any]:
    """One SDFT example from a correction: the conversation up to its last user turn is the student's prompt
    (TRL's conversational format; earlier turns become the example's context), the correction is the
    demonstration the teacher sees and the answer the held-out split is scored against."""
    messages = [dict(m) for m in conversation["messages"]]
    return {"prompt": messages, "demonstration": correction, "answer": correction}


def _new_since(home: str | Path, since: str | None) -> list[dict[str, Any]]:
    """The home's feedback with status ``new``, recorded after ``since``'s creation when given."""
    opened = Home.open(home)
    after = opened.version(since)["created_seq"] if since else 0
    return [f for f in list_feedback(opened.root) if f["status"] == "new" and f["seq"] > after]


def corrections_to_learn(home: str | Path, since: str | None = None,
                         listed: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The chat feedback with a correction that no version has consumed (recorded after ``since``'s creation
    when given; ``listed``: :func:`_new_since` already read)."""
    return [f for f in (_new_since(home, since) if listed is None else listed)
            if f["correction"] and f["conversation"].get("kind") == "chat"]


def _single_turn(conversation: dict[str, Any]) -> bool:
    messages = conversation.get("messages") or []
    return (conversation.get("kind") == "chat" and len(messages) == 1 and messages[0].get("role") == "user"
            and bool(str(conversation.get("answer", "")).strip()))


def answers_to_keep(home: str | Path, since: str | None = None,
                    listed: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Feedback that rates a served answer good (1) without a correction, on a one-turn chat the server itself
    answered (``source`` api: the answer is the model's, not one typed in with ``retain feedback add``), that no
    promoted version keeps yet (recorded after ``since``'s creation when given; ``listed`` as for
    :func:`corrections_to_learn`)."""
    return [f for f in (_new_since(home, since) if listed is None else listed)
            if f["rating"] == 1 and not f["correction"] and f.get("source") == "api"
            and _single_turn(f["conversation"])]


def rated_example(conversation: dict[str, Any]) -> Any:
    """A good-rated one-turn answer as a rehearsal example: the user's message, and the answer the champion gave
    as the stored target (Self-Synthesized Rehearsal's own outputs, Huang et al., ACL 2024, vouched for by a
    user)."""
    from retain.data.skills import Example

    return Example(prompt=conversation["messages"][0]["content"], demonstration=conversation["answer"])


def rated_examples(home: Home, ids: list[str]) -> dict[str, Any]:
    """The rehearsal examples of recorded feedback ``ids`` (``retain reproduce`` of a version that kept them)."""
    wanted = set(ids)
    found = {}
    for row in home.conn.execute("SELECT payload FROM events WHERE type='feedback'"):
        event = json.loads(row["payload"])
        if event["id"] in wanted:
            found[event["id"]] = rated_example(event["conversation"])
    missing = [i for i in ids if i not in found]
    if missing:
        raise RetainError(f"the version kept feedback {missing[0]} in its rehearsal, which the home does not hold",
                          field="rehearsed_feedback")
    return {i: found[i] for i in ids}


def learn_from_feedback(home: str | Path, since: str | None = None, *, name: str | None = None,
                        **learn: Any) -> Any:
    """``retain learn HOME --from-feedback``: learn every unconsumed correction as SDFT examples through
    :func:`retain.home.learn_in_home` (``learn`` are its options), recording the ids consumed. Answers users
    rated good (:func:`answers_to_keep`) join the rehearsal buffer of the learn, with the answer given as its
    stored target, so the corrections are learned without moving what already works (where the learn rehearses;
    the version records the ids it kept)."""
    from retain.home.workflows import learn_in_home

    opened = Home.open(home)
    listed = _new_since(opened.root, since)
    items = corrections_to_learn(opened.root, since, listed)
    if len({canonical_json(f["conversation"]["messages"]) for f in items}) < 2:
        raise RetainError(f"{len(items)} new correction(s){' since ' + since if since else ''}; learning needs "
                          "corrections of at least two distinct prompts (one is held out for the suite)",
                          field="--from-feedback")
    with tempfile.TemporaryDirectory(prefix="retain-feedback-") as tmp:
        data = Path(tmp) / "feedback.jsonl"
        data.write_text("".join(json.dumps(example_row(f["conversation"], f["correction"])) + "\n" for f in items),
                        encoding="utf-8")
        keep = {f["id"]: rated_example(f["conversation"]) for f in answers_to_keep(opened.root, since, listed)}
        return learn_in_home(opened.root, data, name=name or f"feedback-{opened.next_version()}",
                             record={"feedback": {"consumed": [f["id"] for f in items]}}, rehearse=keep or None,
                             **learn)
