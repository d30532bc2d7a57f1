"""The governed lifecycle as a user runs it: the real ``retain`` CLI on the embedded model.

init -> learn (gate) -> log / show / diff -> export -> reproduce -> rollback -> verify, plus bad input (exit 2,
nothing changed), two learns at once, and a learn killed halfway. ``RETAIN_E2E_MODEL`` points the tests at
another base model folder (the default is the shipped ``embedded`` one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retain.data.synthetic import new_skills

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))
MODEL = os.environ.get("RETAIN_E2E_MODEL", "embedded")
LEARN = ["--method", "sft", "--epochs", "1", "--scorer", "alnum", "--quiet"]


def retain(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def skill_file(tmp_path_factory) -> Path:
    skill = new_skills(n_train=40, n_test=10, seed=0)[0]
    path = tmp_path_factory.mktemp("data") / f"{skill.name}.jsonl"
    path.write_text("".join(json.dumps({"prompt": e.prompt, "demonstration": e.demonstration}) + "\n"
                            for e in skill.train + skill.test))
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory, skill_file) -> Path:
    root = tmp_path_factory.mktemp("homes") / "home"
    assert retain("init", root, "--model", MODEL, "--floor", "0").returncode == 0
    learned = retain("learn", root, skill_file, *LEARN)
    assert learned.returncode == 0, learned.stderr
    return root


def test_lifecycle_log_show_diff_export_reproduce_rollback_verify(home, skill_file, tmp_path):
    import hashlib

    from transformers import AutoModelForCausalLM

    log = retain("log", home)
    assert log.returncode == 0 and "└─ v2" in log.stdout and "base" in log.stdout
    shown = json.loads(retain("show", home, "v2", "--json").stdout)
    record = shown["record"]
    assert record["parent"] == "v1" and record["method"] == "sft" and record["config"]["recipe"]["train"]["epochs"] == 1
    assert record["data"][0]["sha256"] == hashlib.sha256(skill_file.read_bytes()).hexdigest()
    assert {"in-context", skill_file.stem} <= set(record["scores"]["probes"]) | set(record["scores"]["skills"])
    assert record["environment"]["packages"]["torch"].startswith("2.13.0")
    assert shown["gates"][0]["decision"] in ("accepted", "rejected")

    diff = retain("diff", home, "v1", "v2")
    assert diff.returncode == 0 and "parameter distance: L2" in diff.stdout and "output drift" in diff.stdout

    out = tmp_path / "exported"
    assert retain("export", home, "v2", out).returncode == 0
    AutoModelForCausalLM.from_pretrained(out)
    assert "## Promotion gate" in (out / "README.md").read_text()

    again = retain("reproduce", home, "v2")
    assert again.returncode == 0 and "identical weights" in again.stdout, again.stdout + again.stderr

    if shown["status"] != "champion":
        assert retain("learn", home, skill_file, *LEARN, "--force", "e2e needs a champion").returncode == 0
    champion = json.loads(retain("show", home, "champion", "--json").stdout)["record"]["version"]
    rolled = retain("rollback", home, "v1", "--reason", "e2e")
    assert rolled.returncode == 0 and f"champion: {champion} -> v1" in rolled.stdout
    assert retain("verify", home).returncode == 0


def test_verify_finds_a_flipped_byte(home):
    manifest = json.loads(retain("show", home, "v2", "--json").stdout)["record"]["artifacts"]["manifest_sha256"]
    target = home / "objects" / manifest[:2] / manifest[2:]
    original = target.read_bytes()
    try:
        target.write_bytes(original[:10] + bytes([original[10] ^ 1]) + original[11:])
        checked = retain("verify", home)
        assert checked.returncode == 1
        assert f"MISMATCH objects/{manifest[:2]}/{manifest[2:]}: content does not match its hash (manifest of v2)" \
            in checked.stdout
    finally:
        target.write_bytes(original)
    assert retain("verify", home).returncode == 0


def test_bad_input_is_one_line_exit_2_and_changes_nothing(home, tmp_path):
    before = (home / "audit.jsonl").read_bytes()
    for args, message in ((("log", tmp_path), "not a retain home"), (("show", home, "v99"), "unknown version 'v99'"),
                          (("learn", home, tmp_path / "missing.jsonl"), "no such file"),
                          (("rollback", home, "v1"), "")):
        done = retain(*args)
        if args[0] == "rollback" and done.returncode == 0:
            continue  # v1 was not champion in this order of tests; the rollback itself is a valid change
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("retain: error: ")
        assert message in done.stderr
    assert (home / "audit.jsonl").read_bytes()[:len(before)] == before


def test_a_second_learn_fails_while_the_first_holds_the_home(home, skill_file):
    # The first learn must outlast the second's start-up (imports and checks, 10-20 s on a loaded 2-core
    # machine), so it trains with SDFT for many passes: at 10 it once finished first under CI's load.
    long_learn = ["--method", "sdft", "--epochs", "40", "--scorer", "alnum", "--quiet"]
    first = subprocess.Popen([RETAIN, "learn", str(home), str(skill_file), *long_learn], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            holder = (home / "lock").read_text() if (home / "lock").exists() else ""
            if f'"pid": {first.pid}' in holder:
                break
            assert first.poll() is None and time.monotonic() < deadline, "the first learn never took the lock"
            time.sleep(0.05)
        second = retain("learn", home, skill_file, *LEARN)
        assert second.returncode == 2
        assert f"the home is busy: pid {first.pid} (learn, since" in second.stderr
        assert first.wait(timeout=3600) in (0, 1), first.stderr.read() if first.stderr else ""
    finally:
        first.kill()
        first.wait()
    assert retain("verify", home).returncode == 0


def versions(home: Path) -> int:
    """The newest version number ``retain log`` shows."""
    return max(int(v) for v in re.findall(r"\bv(\d+)\b", retain("log", home).stdout))


def test_a_learn_killed_after_its_audit_entry_is_finished_by_the_next_command(home, skill_file):
    before = versions(home)
    killed = retain("learn", home, skill_file, *LEARN, env={"RETAIN_TEST_KILL_AT": "after_audit"})
    assert killed.returncode == 137, killed.stderr
    # The operation committed (its audit entries are durable); opening the home applies it to the database.
    assert retain("verify", home).returncode == 0
    assert versions(home) == before + 1
    killed = retain("learn", home, skill_file, *LEARN, env={"RETAIN_TEST_KILL_AT": "artifacts_stored"})
    assert killed.returncode == 137, killed.stderr
    assert retain("verify", home).returncode == 0 and versions(home) == before + 1
