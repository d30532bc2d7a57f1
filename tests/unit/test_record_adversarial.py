"""The record against an attacker without the key, and against faults that must not look like one.

A reviewer extends the two tables:

- ``FORGERIES``: name -> ``forge(root, ctx)``, run on a keyed home (v1 base, v2 promoted, v3 rejected by the
  gate). The attacker can write every file of the home, recompute every hash and rebuild the database with the
  project's own code, and make key pairs of their own, but has not the home's key. Each forgery must be found by
  ``verify`` with the key; a reader (what ``retain log`` and ``show`` open) must refuse it and leave the database
  as it found it; a write must refuse it. Three other machines hold no signing key: one that never saw the home
  (it trusts on first use what it reads after the forgery), one that trusts the owner's public key (``retain key
  trust``), one that read the home before the forgery (and pinned its public key then). On the last two every
  forgery but a cut (``NEEDS_WITNESS``) is found by ``verify`` and refused by a reader; on the first, the rows in
  ``NO_PIN`` pass, and the test asserts that too, so the table's claims are checked both ways.
- ``LEGITIMATE``: name -> ``event(tmp, ctx)`` returning the homes to check: kills at every commit point, a full
  disk (``RLIMIT_FSIZE``: the kernel refuses to grow a file, as it does when a disk fills), copies written
  independently, a home moved, a home deleted and made again at the same path, a home made before home ids.
  Each must verify, open, and take a next write, with the witness in place.

``RETAIN_RECORD_TABLE=forgeries`` (or ``events``) ``python -m pytest tests/unit/test_record_adversarial.py -k
table -s`` prints the tables the README shows.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from retain.errors import RetainError
from retain.ledger import audit, keys, store
from retain.ledger.core import Home
from retain.ledger.hashing import ZERO_SHA, canonical_json, sha256_bytes
from retain.ledger.verify import verify

# -- the attacker's tools (no key) -------------------------------------------------------------------------


def entries_of(root: Path) -> list[dict]:
    entries, problems = audit.parse((root / "audit.jsonl").read_bytes())
    assert not problems, problems
    return [dict(e.data) for e in entries]


def rebuild_db(root: Path) -> None:
    """Replay the log into a new database with the project's own code, as the attacker can."""
    for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    conn = store.connect(root / "ledger.sqlite")
    store.apply(conn, audit.committed(audit.parse((root / "audit.jsonl").read_bytes())[0]))
    conn.close()


def write_chain(root: Path, datas: list[dict], rechain: bool = True) -> None:
    lines, prev = [], ZERO_SHA
    for i, data in enumerate(datas):
        if rechain:
            data["seq"], data["prev_sha256"] = i + 1, prev
        raw = canonical_json(data)
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    (root / "audit.jsonl").write_bytes(b"".join(lines))


def unsigned(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("key", "mac", "sig", "home")}


def appended(root: Path, payloads: list[dict], sign=None) -> None:
    """Chain one new operation of ``payloads`` onto the log (``sign(data)`` may add made-up fields)."""
    datas = entries_of(root)
    seq = len(datas)
    for i, payload in enumerate(payloads):
        data = {"seq": seq + 1 + i, "time": datas[-1]["time"], "op": seq + 1, "last": i == len(payloads) - 1,
                "prev_sha256": "", "payload": payload}
        datas.append(sign(data) if sign else data)
    write_chain(root, datas)


def gate_pass(version: str, champion: str) -> dict:
    return {"type": "gate_decision", "version": version, "champion": champion, "decision": "accepted",
            "reasons": [], "checks": [], "policy": {}, "champion_scores": {"skills": {}, "probes": {}},
            "forced_reason": None}


def promote(version: str, previous: str) -> dict:
    return {"type": "promoted", "version": version, "previous": previous, "reason": "passed the gate"}


def made_up_mac(root: Path, sig: bool = False):
    """Signs with any 64 hex digits for a MAC (and, with ``sig``, any 128 for an Ed25519 signature): no key, no
    real MAC or signature."""
    home_id = json.loads((root / "home.json").read_text()).get("id")
    key_id = entries_of(root)[0]["key"]

    def sign(data: dict) -> dict:
        forged = {**data, "key": key_id, "home": home_id}
        if sig:
            forged["sig"] = sha256_bytes(canonical_json(forged)) * 2
        forged["mac"] = sha256_bytes(canonical_json(forged))
        return forged
    return sign


def strip(root: Path, ctx) -> None:
    datas = [unsigned(d) for d in entries_of(root)]
    datas[0]["payload"].pop("home_id", None)
    datas[0]["payload"].pop("public_key", None)
    write_chain(root, datas)
    (root / "home.json").write_text(json.dumps({"format": "retain-home/1"}))
    rebuild_db(root)


def append_unsigned_promotion(root: Path, ctx) -> None:
    appended(root, [promote("v3", "v2")])


def append_unsigned_gate_and_promotion_rebuilt(root: Path, ctx) -> None:
    appended(root, [gate_pass("v3", "v2"), promote("v3", "v2")])
    rebuild_db(root)


def append_made_up_mac_rebuilt(root: Path, ctx) -> None:
    appended(root, [gate_pass("v3", "v2"), promote("v3", "v2")], sign=made_up_mac(root))
    rebuild_db(root)


def append_made_up_mac(root: Path, ctx) -> None:
    appended(root, [gate_pass("v3", "v2"), promote("v3", "v2")], sign=made_up_mac(root))


def append_made_up_signature_rebuilt(root: Path, ctx) -> None:
    appended(root, [gate_pass("v3", "v2"), promote("v3", "v2")], sign=made_up_mac(root, sig=True))
    rebuild_db(root)


def append_unsigned_rollback_rebuilt(root: Path, ctx) -> None:
    appended(root, [{"type": "rolled_back", "version": "v1", "previous": "v2", "reason": "forged"}])
    rebuild_db(root)


def cut_tail(root: Path, ctx) -> None:
    datas = entries_of(root)
    write_chain(root, datas[: datas[-1]["op"] - 1], rechain=False)
    rebuild_db(root)


def reorder(root: Path, ctx) -> None:
    datas = entries_of(root)
    ops = {}
    for data in datas:
        ops.setdefault(data["op"], []).append(data)
    order = list(ops)
    order[-1], order[-2] = order[-2], order[-1]
    write_chain(root, [d for op in order for d in ops[op]])
    rebuild_db(root)


def replay_old_entry(root: Path, ctx) -> None:
    """The signed ``promoted v2`` entry, appended again (re-chained) after v3's rejection."""
    datas = entries_of(root)
    old = next(d for d in datas if d["payload"]["type"] == "promoted" and d["payload"]["version"] == "v2")
    write_chain(root, datas + [dict(old)])
    rebuild_db(root)


def replay_verbatim(root: Path, ctx) -> None:
    datas = entries_of(root)
    old = next(d for d in datas if d["payload"]["type"] == "promoted" and d["payload"]["version"] == "v2")
    write_chain(root, datas + [dict(old)], rechain=False)


def splice_from_copy(root: Path, ctx, rebuild: bool = True) -> None:
    """The key's owner copies the home and forces a learn in the copy; the attacker appends the copy's new lines
    and objects to the original (its home.json stays)."""
    copy = root.parent / "copy"
    shutil.copytree(root, copy)
    opened = Home.open(copy)
    ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], root.parent / "m4", delta=0.05), "mul", 0.1,
                 force="try it")
    assert opened.champion() == "v4"
    opened.conn.close()
    have = len(entries_of(root))
    raw = (copy / "audit.jsonl").read_bytes().split(b"\n")
    with open(root / "audit.jsonl", "ab") as handle:
        handle.write(b"\n".join(raw[have:]))
    for path in (copy / "objects").rglob("*"):
        target = root / path.relative_to(copy)
        if path.is_file() and not target.exists():
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(path, target)
    if rebuild:
        rebuild_db(root)


def splice_from_copy_unapplied(root: Path, ctx) -> None:
    splice_from_copy(root, ctx, rebuild=False)


def splice_relabelled(root: Path, ctx) -> None:
    """The copy's entries after its ``home_id`` entry, relabelled with the original's id and re-chained: the ids
    agree now, but each MAC covers the copy's id."""
    home_id = json.loads((root / "home.json").read_text()).get("id")
    have = len(entries_of(root))
    splice_from_copy(root, ctx, rebuild=False)
    datas = entries_of(root)
    extra = [d for d in datas[have:] if d["payload"]["type"] != "home_id"]
    for data in extra:
        data["home"] = home_id
    write_chain(root, datas[:have] + extra)
    rebuild_db(root)


def append_foreign_line(root: Path, ctx) -> None:
    """A canonical, chained line that is not an entry retain writes (no payload): evidence, never cut as torn."""
    write_chain(root, entries_of(root) + [{"note": "not a retain entry", "last": True}])


ATTACKER = keys.Key(b"the attacker's own secret, 32 by", "attacker")


def resign(root: Path, ctx) -> None:
    """A key pair of the attacker's own: every entry and a forged gate pass + promoted v3 signed with it (MACs
    and Ed25519 signatures), its public key named in init and home.json. Self-consistent: only a key held
    outside the home (the signing key, a trusted or pinned public key) tells it from the owner's."""
    mark = json.loads((root / "home.json").read_text())
    datas = [unsigned(d) for d in entries_of(root)]
    datas[0]["payload"]["public_key"] = ATTACKER.public.text
    seq = len(datas)
    datas += [{"seq": seq + 1 + i, "time": datas[-1]["time"], "op": seq + 1, "last": i == 1, "payload": payload}
              for i, payload in enumerate([gate_pass("v3", "v2"), promote("v3", "v2")])]
    lines, prev = [], ZERO_SHA
    for i, data in enumerate(datas):
        data["seq"], data["prev_sha256"] = i + 1, prev
        raw = canonical_json(ATTACKER.sign(data, mark["id"]))
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    (root / "audit.jsonl").write_bytes(b"".join(lines))
    (root / "home.json").write_text(json.dumps({**mark, "public_key": ATTACKER.public.text}))
    rebuild_db(root)


def sql_edit(root: Path, ctx) -> None:
    conn = sqlite3.connect(root / "ledger.sqlite")
    conn.execute("UPDATE versions SET status='champion' WHERE name='v3'")
    conn.execute("UPDATE versions SET status='superseded' WHERE name='v2'")
    conn.execute("UPDATE meta SET value='v3' WHERE key='champion'")
    conn.commit()
    conn.close()


def edit_score_rechained(root: Path, ctx) -> None:
    datas = entries_of(root)
    for data in datas:
        if data["payload"]["type"] == "version_created" and data["payload"]["version"] == "v3":
            data["payload"]["record"]["scores"]["skills"]["mul"] = 0.99
    write_chain(root, datas)
    rebuild_db(root)


FORGERIES = {
    "strip every signature, rechain, rebuild db": strip,
    "append unsigned promoted v3": append_unsigned_promotion,
    "append unsigned gate pass + promoted v3, rebuild db": append_unsigned_gate_and_promotion_rebuilt,
    "append made-up-MAC gate pass + promoted v3": append_made_up_mac,
    "append made-up-MAC gate pass + promoted v3, rebuild db": append_made_up_mac_rebuilt,
    "append made-up-MAC + made-up-signature gate pass + promoted v3, rebuild db": append_made_up_signature_rebuilt,
    "append unsigned rolled_back v1, rebuild db": append_unsigned_rollback_rebuilt,
    "cut the last operation, rebuild db": cut_tail,
    "reorder the last two operations, rechain, rebuild db": reorder,
    "replay an old signed entry, rechained, rebuild db": replay_old_entry,
    "replay an old signed entry verbatim": replay_verbatim,
    "splice a copy's signed entries + objects, rebuild db": splice_from_copy,
    "splice a copy's signed entries + objects": splice_from_copy_unapplied,
    "splice a copy's entries relabelled with this home's id, rechain, rebuild db": splice_relabelled,
    "edit a signed score, rechain, rebuild db": edit_score_rechained,
    "append a chained line that is not an entry": append_foreign_line,
    "SQL edit: v3 champion": sql_edit,
    "re-sign every entry with the attacker's own key pair + promoted v3, rebuild db": resign,
}
# A cut back to an earlier operation is a validly signed prefix: every signature in it checks, whoever holds which
# key. Only the witness of the head (on the machine that signed it) or an exported anchor (``--anchor``) finds it.
NEEDS_WITNESS = {
    "cut the last operation, rebuild db": "a validly signed prefix; the witness of the head lives on the machine "
                                          "that signed it (or use --anchor)",
}
# Rows a machine without the signing key finds only with a public key it held before the forgery (pinned with
# ``retain key trust``, or on a first read before it). A machine that never saw the home and trusts no key reads
# the forged home as it is: ``verify`` and ``--no-key`` pass and a reader shows what the rebuilt database holds.
# It still applies nothing (every reader call asserts the database is unchanged) and never applies a signed entry
# that no key it holds checks.
NO_PIN = {
    **NEEDS_WITNESS,
    "strip every signature, rechain, rebuild db": "stripped of every MAC, signature and public key, and of "
                                                  "home.json's mark, it reads as a home that was never signed (it "
                                                  "fails wherever a key is set, trusted or pinned)",
    "re-sign every entry with the attacker's own key pair + promoted v3, rebuild db":
        "self-consistent: the first read trusts the key the home names, the attacker's (it fails wherever the "
        "owner's key is set, trusted or pinned, naming both)",
}
# Rows that leave no trace of a signature: a machine that never saw the home reads them as never signed.
STRIPPED = {"strip every signature, rechain, rebuild db"}
# Rows that before Ed25519 signatures only the key found (an HMAC is checked with the secret alone): a machine
# holding the public key finds them by the signature.
BY_SIGNATURE = ["append made-up-MAC + made-up-signature gate pass + promoted v3, rebuild db",
                "reorder the last two operations, rechain, rebuild db",
                "replay an old signed entry, rechained, rebuild db", "edit a signed score, rechain, rebuild db",
                "splice a copy's entries relabelled with this home's id, rechain, rebuild db"]


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.ENV, raising=False)
    keys.init()
    return tmp_path / "config"


@pytest.fixture
def ctx(tmp_path, config, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path / "h")
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.1)
    assert home.champion() == "v2" and home.version("v3")["status"] == "rejected"
    home.conn.close()
    return {"root": home.root, "base": base, "learn": learn, "change_one_layer": change_one_layer,
            "new_home": new_home, "tmp": tmp_path, "config": config}


def dump(root: Path) -> list[str]:
    """The database's content, as read by a fresh connection (what a reader must not change)."""
    conn = sqlite3.connect(root / "ledger.sqlite")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def reader(root: Path) -> str:
    """What ``retain log`` opens: ``refused`` or the champion it would show; the database must be unchanged."""
    before = dump(root)
    try:
        home = Home.open(root)
    except RetainError:
        outcome = "refused"
    else:
        outcome = home.champion()
        home.conn.close()
    if dump(root) != before:
        outcome += " (APPLIED to the database)"
    return outcome


def writer(root: Path) -> str:
    """A write (what rollback, learn, export, gc and key sign open), past the readers' check."""
    home = Home(root)
    try:
        with home.writing("rollback"):
            pass
    except RetainError:
        return "refused"
    finally:
        home.conn.close()
    return "wrote"


def judge_forgery(name: str, ctx, monkeypatch) -> dict[str, object]:
    root = ctx["root"]
    # (Written so the file also runs against the code before public keys existed, to watch these rows fail there.)
    public = getattr(keys.load(), "public", None)
    # A machine without the key that read the home before the forgery: it pinned the home's public key then.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["tmp"] / "read-before"))
    assert reader(root) == "v2"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["config"]))
    FORGERIES[name](root, ctx)
    row: dict[str, object] = {"verify": not verify(root, finish=False).ok, "reader": reader(root),
                              "write": writer(root)}
    # Another machine: no key, no witness, nothing trusted; its first read is this one, after the forgery.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["tmp"] / "elsewhere"))
    row["verify (no key)"] = not verify(root, finish=False).ok
    row["verify --no-key"] = (not verify(root, finish=False, no_key=True).ok
                              if "no_key" in inspect.signature(verify).parameters else "n/a")
    row["reader (no key)"] = reader(root)
    # A machine that trusts the owner's public key (retain key trust) and never read the home.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["tmp"] / "trusting"))
    if public is not None:
        keys.trust(public)
        row["why (trusted)"] = verify(root, finish=False).problems
        row["verify (trusted)"], row["reader (trusted)"] = bool(row["why (trusted)"]), reader(root)
    else:
        row["verify (trusted)"], row["reader (trusted)"], row["why (trusted)"] = "n/a", "n/a", []
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["tmp"] / "read-before"))
    row["why (pinned)"] = verify(root, finish=False).problems
    row["verify (pinned)"], row["reader (pinned)"] = bool(row["why (pinned)"]), reader(root)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["config"]))
    return row


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forgery_is_detected_and_never_applied(name, ctx, monkeypatch):
    row = judge_forgery(name, ctx, monkeypatch)
    readers = [row[k] for k in ("reader", "reader (no key)", "reader (trusted)", "reader (pinned)")]
    assert not [r for r in readers if "APPLIED" in r], f"{name}: a reader changed the database: {readers}"
    assert row["verify"], f"{name}: verify with the key passed"
    assert row["reader"] == "refused", f"{name}: a reader with the key showed champion {row['reader']}"
    assert row["write"] == "refused", f"{name}: a write went ahead"
    if name.startswith("append made-up-MAC gate pass"):
        # A MAC alone, where every entry from the first signed one on carries a signature.
        assert "no Ed25519 signature, though every entry from 1 on has one" in row["why (pinned)"][0], row
    for machine in ("trusted", "pinned"):
        found = name not in NEEDS_WITNESS
        assert row[f"verify ({machine})"] == found, f"{name}: verify with the public key {machine}: {row}"
        assert (row[f"reader ({machine})"] == "refused") == found, f"{name}: reader ({machine}): {row}"
        if name in BY_SIGNATURE:
            assert "the Ed25519 signature does not check with public key" in row[f"why ({machine})"][0], row
        if name in NO_PIN and name not in NEEDS_WITNESS:
            assert "public key" in row[f"why ({machine})"][0], row
    found = name not in NO_PIN
    assert row["verify --no-key"] == found, f"{name}: never saw it: {row}"
    assert (row["reader (no key)"] == "refused") == found, f"{name}: never saw it: {row}"
    # verify without --no-key fails wherever the home names a public key nothing on this machine vouched for:
    # every row but the strip (which reads as a home never signed)
    assert row["verify (no key)"] == (name not in STRIPPED), f"{name}: never saw it: {row}"


@pytest.mark.parametrize("name", list(FORGERIES))
def test_repair_cuts_back_to_the_last_trusted_entry_and_records_it(name, ctx):
    """``verify --repair`` is the one way on: the forged tail is cut (and kept beside the log), the database is
    rebuilt, the repair is a signed entry, and the champion is the one the trusted log gives."""
    from retain.ledger import trust
    from retain.ledger.anchors import sign_home

    root = ctx["root"]
    FORGERIES[name](root, ctx)
    if name.startswith("re-sign"):
        # Even entry 1 is not the owner's: there is nothing to cut back to. The owner restores the log (or the
        # home) from a copy; a reader anywhere the owner's key is held refuses it meanwhile.
        with pytest.raises(RetainError, match="no entry of the audit log can be trusted"):
            verify(root, repair=True)
        return
    report = verify(root, repair=True)
    if name.startswith("strip"):
        # Nothing to cut: the log is sound but unsigned; signing it again is the owner's explicit step.
        assert report.problems == [trust.UNSIGNED]
        assert sign_home(root)[1]
        report = verify(root)
    assert report.ok, report.problems
    home = Home.open(root)
    # Cut back to before the forgery: the champion is one the gate let through (v1 when the cut reaches init's
    # op, as a reordering's does), never the rejected v3 or the copy's forced v4.
    assert home.champion() in ("v1", "v2")
    assert "v4" not in [v["name"] for v in home.versions()]
    types = [e["payload"]["type"] for e in entries_of(root)]
    if name.startswith(("SQL", "strip")):
        assert "repaired" not in types
    else:
        assert types[-1] == "repaired"
    with home.writing("suite"):
        pass
    home.conn.close()


# -- legitimate events -------------------------------------------------------------------------------------

LEARN = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import _learn
from retain.ledger.core import Home
home = Home.open(sys.argv[1])
_learn(home, Path(sys.argv[2]), sys.argv[3], 0.9)
"""
ROLLBACK = """
import sys
from retain.ledger.core import Home
from retain.ledger.operations import rollback
rollback(Home.open(sys.argv[1]), "v1")
"""
FULL = """
import resource, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import _learn
from retain.errors import RetainError
from retain.ledger.core import Home
home = Home.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))
try:
    _learn(home, Path(sys.argv[2]), "mul", 0.9)
    print("recorded")
except RetainError as err:
    print(err)
"""
TESTS = str(Path(__file__).resolve().parents[1])
COMMIT_POINTS = ["object_written", "before_rename", "artifacts_stored", "before_audit", "audit_torn", "after_audit",
                 "in_db_transaction", "after_db"]


def run(script: str, *args: object, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"RETAIN_TEST_KILL_AT": kill} if kill else {})}
    return subprocess.run([sys.executable, "-c", script.format(tests=TESTS), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def killed_learn(point: str):
    def event(ctx) -> list[Path]:
        root = ctx["root"]
        proc = run(LEARN, root, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub", kill=point)
        assert proc.returncode == 137, proc.stderr[-2000:]
        return [root]
    return event


def killed_rollback(point: str):
    def event(ctx) -> list[Path]:
        proc = run(ROLLBACK, ctx["root"], kill=point)
        assert proc.returncode == 137, proc.stderr[-2000:]
        return [ctx["root"]]
    return event


def full_disk(room: int):
    """The next learn meets a file-size limit ``room`` bytes past the audit log's size (its blobs are smaller)."""
    def event(ctx) -> list[Path]:
        root = ctx["root"]
        limit = (root / "audit.jsonl").stat().st_size + room
        proc = run(FULL, root, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), limit)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout.strip().splitlines()[-1]
        ctx["outcome"] = out.split(": ", 1)[-1][:70]
        assert out == "recorded" or "no space left on the device" in out or "the next command applies it" in out, out
        return [root]
    return event


def copies(ctx) -> list[Path]:
    """Two copies of one home, each written on its own after the copy, and the original written too."""
    root = ctx["root"]
    one, two = root.parent / "one", root.parent / "two"
    shutil.copytree(root, one)
    shutil.copytree(root, two)
    for i, where in enumerate((one, two, root)):
        opened = Home.open(where)
        ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / f"c{i}", delta=0.03 + i / 100),
                     "sub", 0.9)
        opened.conn.close()
    return [root, one, two]


def copy_killed_taking_its_id(ctx) -> list[Path]:
    """A learn in a copy killed between its home_id entry and home.json: the next command finishes it."""
    root = ctx["root"]
    copy = root.parent / "copy"
    shutil.copytree(root, copy)
    proc = run(LEARN, copy, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub",
               kill="after_home_id")
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert entries_of(copy)[-1]["payload"]["type"] == "home_id"
    return [root, copy]


def moved(ctx) -> list[Path]:
    root = ctx["root"]
    to = root.parent / "moved"
    os.rename(root, to)
    opened = Home.open(to)
    ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub", 0.9)
    opened.conn.close()
    # A home moved with mv is the same home: it takes no new id.
    assert not any(e["payload"]["type"] == "home_id" for e in entries_of(to))
    return [to]


def recreated(ctx) -> list[Path]:
    root = ctx["root"]
    shutil.rmtree(root)
    home, _ = ctx["new_home"](ctx["tmp"] / "again")
    home.conn.close()
    os.rename(home.root, root)
    opened = Home.open(root)
    ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub", 0.9)
    opened.conn.close()
    return [root]


def made_before_ids(ctx) -> list[Path]:
    """A signed home as the code before home ids wrote it: MACs without an id, no id in home.json, the
    witness filed under the first entry's hash. It verifies as it is and takes an id at its next write."""
    root = ctx["root"]
    key = keys.load()
    datas = []
    for data in entries_of(root):
        data = unsigned(data)
        data["payload"].pop("home_id", None)
        datas.append(data)
    prev = ZERO_SHA
    lines = []
    for data in datas:
        data["prev_sha256"] = prev
        signed = key.sign(data)
        raw = canonical_json(signed)
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    (root / "audit.jsonl").write_bytes(b"".join(lines))
    (root / "home.json").write_text(json.dumps({"format": "retain-home/1"}))
    rebuild_db(root)
    for path in (keys.config_dir() / "witness").iterdir():
        path.unlink()
    keys.record_witness(root, sha256_bytes(lines[0][:-1]), len(lines), prev)
    assert verify(root).ok, verify(root).problems
    opened = Home.open(root)
    ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub", 0.9)
    opened.conn.close()
    assert json.loads((root / "home.json").read_text()).get("id")
    return [root]


def signed_before_ed25519(ctx) -> list[Path]:
    """A home as the code before Ed25519 signatures signed it: MACs only, no public key named. It verifies with
    the key exactly as before (and without it only with --no-key); its next write names the public key in a
    signed entry and signs from there on, and a machine without the key then checks every signature."""
    root = ctx["root"]
    key, home_id = keys.load(), json.loads((root / "home.json").read_text())["id"]
    lines, prev = [], ZERO_SHA
    for data in entries_of(root):
        data = unsigned(data)
        data["payload"].pop("public_key", None)
        data["prev_sha256"] = prev
        data = {**data, "key": key.id, "home": home_id}
        data["mac"] = key.mac(canonical_json(data))
        raw = canonical_json(data)
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    (root / "audit.jsonl").write_bytes(b"".join(lines))
    (root / "home.json").write_text(json.dumps({"format": "retain-home/1", "id": home_id, "signed": True}))
    rebuild_db(root)
    keys.record_witness(root, home_id, len(lines), prev)
    assert verify(root).ok, verify(root).problems
    os.environ["XDG_CONFIG_HOME"] = str(ctx["tmp"] / "elsewhere")
    try:
        assert "but no key is set here to check it" in verify(root, finish=False).problems[0]
        assert verify(root, finish=False, no_key=True).ok
    finally:
        os.environ["XDG_CONFIG_HOME"] = str(ctx["config"])
    opened = Home.open(root)
    ctx["learn"](opened, ctx["change_one_layer"](ctx["base"], ctx["tmp"] / "m4", delta=0.03), "sub", 0.9)
    opened.conn.close()
    datas = entries_of(root)
    assert datas[len(lines)]["payload"] == {"type": "public_key", "public_key": key.public.text,
                                            "reason": datas[len(lines)]["payload"]["reason"]}
    assert all("sig" in d for d in datas[len(lines):]) and not any("sig" in d for d in datas[:len(lines)])
    assert json.loads((root / "home.json").read_text())["public_key"] == key.public.text
    os.environ["XDG_CONFIG_HOME"] = str(ctx["tmp"] / "elsewhere")
    try:
        # nothing here vouched for the key the home now names: verify says so unless --no-key accepts (pins) it
        assert "which only the home names" in verify(root, finish=False).problems[0]
        report = verify(root, finish=False, no_key=True)
        assert report.ok, report.problems
        assert f"entries 1-{len(lines)} carry MACs only" in " ".join(report.notes)
        assert verify(root, finish=False).ok  # pinned by the --no-key run
    finally:
        os.environ["XDG_CONFIG_HOME"] = str(ctx["config"])
    return [root]


LEGITIMATE = {
    **{f"learn killed at {p}": killed_learn(p) for p in COMMIT_POINTS},
    **{f"rollback killed at {p}": killed_rollback(p) for p in ("before_audit", "after_audit", "in_db_transaction",
                                                                "after_db")},
    **{f"full disk {room} bytes past the log": full_disk(room) for room in (200, 3000, 20000, 60000)},
    "copies written independently": copies,
    "a copy's learn killed between its home_id entry and home.json": copy_killed_taking_its_id,
    "home moved (mv)": moved,
    "home deleted and made again at its path": recreated,
    "home made before home ids": made_before_ids,
    "home signed before Ed25519 signatures (MACs only)": signed_before_ed25519,
}


def judge_event(name: str, ctx) -> dict[str, object]:
    homes = LEGITIMATE[name](ctx)
    problems = []
    for root in homes:
        problems += verify(root).problems
        outcome = reader(root)
        if outcome == "refused" or "APPLIED" in outcome:
            problems.append(f"{root.name}: a reader refused it or changed the database ({outcome})")
        try:
            opened = Home.open(root)
            with opened.writing("suite"):
                opened.commit([{"type": "suite_removed", "name": "nothing", "reason": "a next write"}])
            opened.conn.close()
        except RetainError as err:
            problems.append(f"{root.name}: the next write refused: {err}")
        problems += verify(root).problems
    return {"false alarm": bool(problems), "problems": problems, "outcome": ctx.get("outcome", "")}


@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_legitimate_event_raises_no_alarm(name, ctx):
    row = judge_event(name, ctx)
    assert not row["false alarm"], row["problems"]


TABLE = os.environ.get("RETAIN_RECORD_TABLE", "")


@pytest.mark.skipif(not TABLE, reason="prints the README tables: RETAIN_RECORD_TABLE=forgeries (or events, or "
                                       "both) pytest tests/unit/test_record_adversarial.py -k table -s")
def test_table(ctx, monkeypatch, tmp_path):
    """Not a check of its own (the tests above are): every row again, printed as the README's tables."""
    if TABLE in ("forgeries", "both"):
        rows = []
        for i, name in enumerate(FORGERIES):
            fresh = fresh_ctx(ctx, tmp_path / f"f{i}", monkeypatch)
            try:
                row = judge_forgery(name, fresh, monkeypatch)
            except Exception as err:  # the table also runs against older code, where rows may crash
                monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["config"]))
                rows.append(f"| {name} | CRASH: {type(err).__name__}: {str(err).splitlines()[0][:80]} |")
                continue
            def fails(value: object) -> str:
                return value if value == "n/a" else "yes" if value else "no"
            rows.append(f"| {name} | {'yes' if row['verify'] else 'NO'} | "
                        f"{'refused' if row['reader'] == 'refused' else 'SHOWN ' + str(row['reader'])} | "
                        f"{row['write']} | {fails(row['verify (no key)'])} | {fails(row['verify --no-key'])} | "
                        f"{row['reader (no key)']} | {fails(row['verify (trusted)'])} | {row['reader (trusted)']} | "
                        f"{fails(row['verify (pinned)'])} | {row['reader (pinned)']} |")
        print("\n| forgery (attacker without the key) | verify (key) | reader (key) | write | never saw it: verify "
              "fails | never saw it: verify --no-key fails | never saw it: reader | key trusted: verify fails | "
              "key trusted: reader | pinned on an earlier read: verify fails | pinned: reader |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    if TABLE in ("events", "both"):
        events = []
        for i, name in enumerate(LEGITIMATE):
            fresh = fresh_ctx(ctx, tmp_path / f"l{i}", monkeypatch)
            try:
                row = judge_event(name, fresh)
            except Exception as err:
                events.append(f"| {name} | CRASH: {type(err).__name__}: {str(err).strip().splitlines()[-1][:90]} |")
                continue
            events.append(f"| {name} | {'YES: ' + row['problems'][0] if row['false alarm'] else 'no'} | "
                          f"{row['outcome'] or '-'} |")
        print("\n| legitimate event (key set) | false alarm | what the write said |\n|---|---|---|")
        print("\n".join(events))


def fresh_ctx(ctx, tmp: Path, monkeypatch) -> dict:
    tmp.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ctx["config"]))
    home, base = ctx["new_home"](tmp / "h")
    ctx["learn"](home, ctx["change_one_layer"](base, tmp / "m2"), "add", 0.9)
    ctx["learn"](home, ctx["change_one_layer"](base, tmp / "m3", delta=0.02), "mul", 0.1)
    home.conn.close()
    return {**ctx, "root": home.root, "base": base, "tmp": tmp}
