"""Tampering and faults as a user meets them through the real ``retain`` CLI: a keyed home with a forged
promotion appended, an anchor, gc, a missing database, and a read-only home (where the test can mount one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retain.ledger import audit
from retain.ledger.hashing import canonical_json

RETAIN = str(Path(sys.executable).with_name("retain"))


def retain(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "COLUMNS": "200", **env})


@pytest.fixture
def config(tmp_path, monkeypatch) -> dict[str, str]:
    """A private config directory with a key made by ``retain key init`` (also used by the fixtures here)."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    monkeypatch.delenv("RETAIN_KEY", raising=False)
    made = retain("key", "init", env=env)
    assert made.returncode == 0 and "mode 0600" in made.stdout, made.stderr
    return env


def test_forged_promotion_is_refused_and_reported(tmp_path, config, keyed_home):
    anchor = tmp_path / "head.json"
    exported = retain("verify", keyed_home, "--export-anchor", anchor, env=config)
    assert exported.returncode == 0 and "anchor: entry 8" in exported.stdout, exported.stdout + exported.stderr
    log = keyed_home / "audit.jsonl"
    entries, _ = audit.parse(log.read_bytes())
    forged = {"seq": 9, "time": entries[-1].data["time"], "op": 9, "last": True, "prev_sha256": entries[-1].sha256,
              "payload": {"type": "promoted", "version": "v3", "previous": "v2", "reason": "passed the gate"}}
    with open(log, "ab") as handle:
        handle.write(canonical_json(forged) + b"\n")
    # Readers report the forged entry and stop; the database is not touched.
    shown = retain("log", keyed_home, env=config)
    assert shown.returncode == 2 and "does not verify: audit.jsonl:9: not signed" in shown.stderr
    checked = retain("verify", keyed_home, "--anchor", anchor, env=config)
    assert checked.returncode == 1
    assert "MISMATCH audit.jsonl:9: not signed, though every entry from 1 on must be" in checked.stdout
    assert "matches the anchor at entry 8; 1 entries since" in checked.stdout
    refused = retain("rollback", keyed_home, "v1", env=config)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "does not verify" in refused.stderr


def test_gc_and_a_missing_database(config, keyed_home):
    loose = keyed_home / "objects" / "ab" / ("c" * 62)
    loose.parent.mkdir(exist_ok=True)
    loose.write_bytes(b"x")
    noted = retain("verify", keyed_home, env=config)
    assert noted.returncode == 1 and "content does not match its hash (an unreferenced object)" in noted.stdout
    collected = retain("gc", keyed_home, env=config)
    assert collected.returncode == 0 and "removed 1 unreferenced objects (1 bytes)" in collected.stdout
    (keyed_home / "ledger.sqlite").unlink()
    missing = retain("show", keyed_home, "v2", env=config)
    assert missing.returncode == 2 and missing.stderr.strip().endswith(
        "ledger.sqlite: the ledger database is missing; retain verify HOME --repair rebuilds it from the audit log")
    assert retain("verify", keyed_home, env=config).returncode == 1
    repaired = retain("verify", keyed_home, "--repair", env=config)
    assert repaired.returncode == 0 and "rebuilt ledger.sqlite from 8 audit entries" in repaired.stdout
    assert "champion v2" in retain("log", keyed_home, env=config).stdout


def test_a_read_only_home_serves_every_read_command(tmp_path, config, keyed_home):
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only bind mount here (no user namespaces)")
    view = tmp_path / "ro"
    view.mkdir()
    commands = [["log", view], ["show", view, "v2", "--json"], ["verify", view], ["export", view, "v2",
                tmp_path / "exported"], ["diff", view, "v1", "v2", "--no-drift"], ["rollback", view, "v1"]]
    lines = " ; ".join(" ".join(map(str, [RETAIN, *c])) + " > /dev/null 2>" + str(tmp_path / f"err{i}")
                       + "; echo rc $?" for i, c in enumerate(commands))
    script = f"mount --bind {keyed_home} {view} && mount -o remount,bind,ro {view} && {lines}"
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=3600, env={**os.environ, **config})
    codes = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("rc ")]
    errors = [(tmp_path / f"err{i}").read_text() for i in range(len(commands))]
    assert codes == [0, 0, 0, 0, 0, 2], errors
    assert errors[-1].count("\n") == 1 and "the home is read-only" in errors[-1]
    assert json.loads((tmp_path / "exported" / "config.json").read_text())


@pytest.mark.slow
def test_a_killed_learn_leaves_nothing_outside_the_home_and_the_next_command_cleans_up(tmp_path, monkeypatch):
    from retain.data.synthetic import new_skills

    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {"TMPDIR": str(system_tmp), "XDG_CONFIG_HOME": str(tmp_path / "config"), "OMP_NUM_THREADS": "1"}
    root = tmp_path / "home"
    made = retain("init", root, "--no-suite", env=env)
    assert made.returncode == 0, made.stderr
    skill = new_skills(n_train=24, n_test=6, seed=0, names=["rotr"])[0]
    data = tmp_path / "rotr.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.prompt, "demonstration": e.demonstration}) + "\n"
                            for e in skill.train + skill.test))
    killed = retain("learn", root, data, "--method", "sft", "--epochs", "1", "--quiet",
                    env={**env, "RETAIN_TEST_KILL_AT": "artifacts_stored"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    # torch keeps an (empty) compile cache folder in the system temp; nothing of retain's may be there.
    assert [p.name for p in system_tmp.iterdir() if not p.name.startswith("torchinductor")] == []
    assert [p.name.split("-")[0] for p in (root / "tmp").iterdir()] == ["learn"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".home")]
    assert retain("log", root, env=env).returncode == 0
    assert list((root / "tmp").iterdir()) == []
    checked = retain("verify", root, env=env)
    assert checked.returncode == 0 and "unreferenced objects" in checked.stdout
    assert retain("gc", root, env=env).returncode == 0
    assert "unreferenced" not in retain("verify", root, env=env).stdout
