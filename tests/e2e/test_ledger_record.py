"""The record's fixes as a user meets them through the real ``retain`` CLI: verify without the key, --no-key,
no -wal/-shm left behind, key sign saying what it signed, a cut log that no write launders, --repair, export of a
home whose database was edited, and an lr that would overflow the model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from retain.ledger import audit, store

RETAIN = str(Path(sys.executable).with_name("retain"))


def retain(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **env})


@pytest.fixture
def config(tmp_path, monkeypatch) -> dict[str, str]:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    monkeypatch.delenv("RETAIN_KEY", raising=False)
    assert retain("key", "init", env=env).returncode == 0
    return env


def test_verify_needs_the_key_or_no_key_and_leaves_no_wal(tmp_path, config, keyed_home):
    checked = retain("verify", keyed_home, env=config)
    assert checked.returncode == 0, checked.stdout
    assert sorted(p.name for p in keyed_home.iterdir() if p.name.startswith("ledger")) == ["ledger.sqlite"]
    elsewhere = {"XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}
    # elsewhere: no signing key and no public key of the owner: the home's own key proves nothing, so verify
    # fails (pinning nothing) unless --no-key accepts that key (and pins it) or the owner's key is given
    keyless = retain("verify", keyed_home, env=elsewhere)
    assert keyless.returncode == 1 and "which only the home names" in keyless.stdout, keyless.stdout
    assert not (tmp_path / "elsewhere" / "retain" / "known_homes").exists()
    owner = retain("key", "public", env=config).stdout.split()[-1]
    given = retain("verify", keyed_home, "--public-key", owner, env=elsewhere)
    assert given.returncode == 0 and f"checked with public key {owner}" in given.stdout, given.stdout
    allowed = retain("verify", keyed_home, "--no-key", env=elsewhere)
    assert allowed.returncode == 0 and "pinned on this machine when it first read" in allowed.stdout, allowed.stdout
    again = retain("verify", keyed_home, env=elsewhere)  # pinned by the --no-key run
    assert again.returncode == 0 and "pinned on this machine" in again.stdout, again.stdout
    assert sorted(p.name for p in keyed_home.iterdir() if p.name.startswith("ledger")) == ["ledger.sqlite"]


def test_key_sign_says_what_it_signed(tmp_path, config, keyed_home, new_home):
    signed = retain("key", "sign", keyed_home, env=config)
    assert signed.returncode == 0 and signed.stdout.strip().endswith(
        "already signed (every entry from 1 on); nothing written"), signed.stdout
    elsewhere = {"XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}
    os.environ["XDG_CONFIG_HOME"] = elsewhere["XDG_CONFIG_HOME"]
    plain, _ = new_home(tmp_path / "plain")
    plain.conn.close()
    os.environ["XDG_CONFIG_HOME"] = config["XDG_CONFIG_HOME"]
    # With a key set, an unsigned home is refused until its owner signs it (the one write allowed on it).
    shown = retain("log", plain.root, env=config)
    assert shown.returncode == 2 and "not signed, though a signing key is set here" in shown.stderr
    first = retain("key", "sign", plain.root, env=config)
    assert first.returncode == 0 and first.stdout.strip().endswith(
        "signed from entry 4 on (entries 1-3 predate the key)"), first.stdout
    assert retain("verify", plain.root, env=config).returncode == 0


def test_a_cut_log_is_not_laundered_by_a_write_and_repair_is_explicit(config, keyed_home):
    log = keyed_home / "audit.jsonl"
    entries, _ = audit.parse(log.read_bytes())
    log.write_bytes(log.read_bytes()[: entries[5].end])
    for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
        (keyed_home / name).unlink(missing_ok=True)
    conn = store.connect(keyed_home / "ledger.sqlite")
    store.apply(conn, entries[:6])
    conn.close()
    assert retain("verify", keyed_home, env=config).returncode == 1
    for command in (["key", "sign", keyed_home], ["rollback", keyed_home, "v1"], ["gc", keyed_home]):
        refused = retain(*command, env=config)
        assert refused.returncode == 2 and "the log was cut" in refused.stderr, (command, refused.stderr)
        assert refused.stderr.count("\n") == 1
    assert retain("verify", keyed_home, env=config).returncode == 1
    repaired = retain("verify", keyed_home, "--repair", env=config)
    assert repaired.returncode == 0 and "recorded the repair as entry 7" in repaired.stdout, repaired.stdout
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["payload"]["type"] == "repaired" and "the log was cut" in last["payload"]["problem"]
    assert retain("verify", keyed_home, env=config).returncode == 0


def test_export_refuses_an_edited_database_and_repair_rebuilds_it(tmp_path, config, keyed_home):
    conn = sqlite3.connect(keyed_home / "ledger.sqlite")
    conn.execute("UPDATE meta SET value='v3' WHERE key='champion'")
    conn.commit()
    conn.close()
    size = (keyed_home / "audit.jsonl").stat().st_size
    exported = retain("export", keyed_home, "champion", tmp_path / "out", env=config)
    assert exported.returncode == 2 and "table meta, row champion" in exported.stderr
    assert not (tmp_path / "out").exists() and (keyed_home / "audit.jsonl").stat().st_size == size
    repaired = retain("verify", keyed_home, "--repair", env=config)
    assert repaired.returncode == 0 and "rebuilt ledger.sqlite from 8 audit entries" in repaired.stdout
    assert "champion v2" in retain("log", keyed_home, env=config).stdout


def test_an_lr_that_overflows_is_bad_input(tmp_path, config, keyed_home):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"add {i}?", "demonstration": f"add-{i}"}) + "\n"
                            for i in range(8)))
    size = (keyed_home / "audit.jsonl").stat().st_size
    learned = retain("learn", keyed_home, data, "--method", "sft", "--epochs", "1", "--lr", "1e30", "--quiet",
                     env=config)
    assert learned.returncode == 2 and learned.stderr.count("\n") == 1
    assert "lr: must be at most 1" in learned.stderr
    assert (keyed_home / "audit.jsonl").stat().st_size == size
