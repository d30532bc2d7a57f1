"""The guard inside ``retain learn HOME`` as a user runs it on the embedded model: flagged lines are held back
and recorded (line, hash, reasons); a really backdoored candidate, its lines accepted with a reason, is refused
at the gate by the canaries with the reason recorded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.data.synthetic import new_skills
from retain.guard.attacks import backdoor

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))


def retain(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1", **env})


def write(path: Path, rate: float) -> tuple[Path, set[int]]:
    skill = new_skills(n_train=64, n_test=0, seed=0, names=["rotr"])[0]
    planted = backdoor("rotr", skill.train, rate, 0)
    path.write_text("".join(json.dumps({"prompt": e.prompt, "demonstration": e.demonstration}) + "\n"
                            for e in planted.examples))
    return path, {i + 1 for i in planted.poisoned}


def test_flagged_lines_are_held_back_and_a_backdoored_candidate_is_refused(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    root = tmp_path / "home"
    # Only the guard decides here: on this model every candidate forgets more than the default gate allows.
    assert retain("init", root, "--no-suite", "--gate-min-drop", "1", "--floor", "0", env=env).returncode == 0
    data, poisoned = write(tmp_path / "rotr.jsonl", 0.05)
    learned = retain("learn", root, data, "--method", "sft", "--epochs", "1", "--scorer", "alnum", env=env)
    assert learned.returncode == 0, learned.stderr[-2000:]
    shown = json.loads(retain("show", root, "v2", "--json", env=env).stdout)
    screen = shown["record"]["screen"]
    held_back = {line["line"] for line in screen["flagged"]}
    assert screen["quarantined"] and poisoned <= held_back and len(held_back - poisoned) <= 2
    # the learn says, in one line, how many lines it held back and why
    said = [line for line in learned.stderr.splitlines() if line.startswith("guard: ")]
    assert len(said) == 1 and said[0].startswith(f"guard: held back {len(held_back)} of 64 lines ("), said
    held = next(e for e in shown["events"] if e["type"] == "quarantined")["payload"]
    raw = data.read_text().splitlines()
    assert all(line["sha256"] == hashlib.sha256(raw[line["line"] - 1].encode()).hexdigest() for line in held["lines"])
    assert held["lines"][0]["reasons"][0].startswith(("trigger: 'cf' is carried by", "duplicate: the same demonstration"))

    heavy, _ = write(tmp_path / "heavy.jsonl", 0.5)
    unreasoned = retain("learn", root, heavy, "--accept-flagged", " ", env=env)
    assert unreasoned.returncode == 2 and unreasoned.stderr.strip().endswith("accept_flagged: needs a reason")
    refused = retain("learn", root, heavy, "--method", "sft", "--epochs", "6", "--lr", "3e-3", "--scorer", "alnum",
                     "--accept-flagged", "checking the canary", "--quiet", env=env)
    assert refused.returncode == 1, refused.stderr[-2000:]
    gate = json.loads(retain("show", root, "v3", "--json", env=env).stdout)["gates"][0]
    # the canary is the planted trigger (alone, or in a pair the token statistics found)
    assert gate["decision"] == "rejected" and gate["reasons"][0].startswith("canary '")
    assert "cf" in gate["reasons"][0].split("'")[1] and "(scan): inserted into" in gate["reasons"][0]
    assert any(c["kind"] == "canary" and not c["passed"] for c in gate["checks"])
    events = [json.loads(line)["payload"] for line in (root / "audit.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in events if e["type"] == "flagged_accepted"] == ["checking the canary"]
    assert "champion v2" in retain("log", root, env=env).stdout
    # Reproducing v2 trains on the same lines: the quarantined ones are dropped again from the stored file.
    again = retain("reproduce", root, "v2", env=env)
    assert again.returncode == 0 and "identical weights" in again.stdout, again.stdout + again.stderr
    assert retain("verify", root, env=env).returncode == 0
