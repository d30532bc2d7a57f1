"""A new user's own model and own regression suite, through the real CLI: init with --suite, a learn the suite
rejects, a forced one, rollback, suite edits in the audit log, and bad input answered in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def retain(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          timeout=1800, env=ENV)


def one_line_error(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("retain: error: ") and run.stderr.count("\n") == 1, run.stderr


@pytest.fixture
def user_model(tmp_path, tiny_model):
    """A tiny non-embedded model, and a suite of what it does now (its own greedy answers): it scores 100%
    there, so any learn that changes those answers is a regression the user's suite sees."""
    from retain import api
    from retain.data.skills import Example

    base = tiny_model(tmp_path / "base")
    model = api.load_model(str(base))
    prompts = [Example(prompt=f"{c}{i}", demonstration="") for c in "abcd" for i in range(6)]
    # answered as the home scores them (its default answer length), so the model passes every item of its suite
    # and a regression is a significant paired drop
    answers = model.answer(prompts)
    suite = tmp_path / "habits.jsonl"
    suite.write_text("".join(json.dumps({"prompt": e.prompt, "answer": a}) + "\n"
                             for e, a in zip(prompts, answers) if a.strip()))
    skill = tmp_path / "echo.jsonl"
    skill.write_text("".join(json.dumps({"prompt": f"echo {w}", "demonstration": w}) + "\n"
                             for w in ("ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st")))
    return base, suite, skill


def test_user_suite_drives_the_gate_then_force_and_rollback(tmp_path, user_model):
    base, suite, skill = user_model
    home = tmp_path / "home"
    one_line_error(retain("init", home, "--model", base))
    assert not home.exists()
    made = retain("init", home, "--model", base, "--suite", suite)
    assert made.returncode == 0, made.stderr
    listed = json.loads(retain("suite", "list", home, "--json").stdout)["items"]
    assert [(i["name"], i["kind"]) for i in listed] == [("habits", "probe")]
    assert listed[0]["n"] > 0 and listed[0]["n_train"] > 0

    # a large learning rate rewrites the model: its habits (the user's suite) regress and the gate says no
    rejected = retain("learn", home, skill, "--method", "sft", "--lr", "0.05", "--epochs", "3", "--batch-size", "2")
    assert rejected.returncode == 1, rejected.stderr
    shown = json.loads(retain("show", home, "v2", "--json").stdout)
    assert shown["status"] == "rejected"
    assert any("habits" in reason for gate in shown["gates"] for reason in gate["reasons"])

    forced = retain("learn", home, skill, "--method", "sft", "--lr", "0.05", "--epochs", "3", "--batch-size", "2",
                    "--force", "accepted by hand")
    assert forced.returncode == 0, forced.stderr
    back = retain("rollback", home, "v1")
    assert back.returncode == 0, back.stderr
    assert json.loads(retain("show", home, "v1", "--json").stdout)["status"] == "champion"
    assert json.loads(retain("show", home, "v3", "--json").stdout)["status"] != "champion"

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "more.jsonl").write_text(suite.read_text())
    (extra / "suite.json").write_text(json.dumps({"more.jsonl": {"name": "more habits", "scorer": "alnum"}}))
    added = retain("suite", "add", home, extra, "--reason", "a second regression set")
    assert added.returncode == 0, added.stderr
    clash = retain("suite", "add", home, extra)
    one_line_error(clash)
    assert "retain suite remove" in clash.stderr
    removed = retain("suite", "remove", home, "more habits")
    assert removed.returncode == 0, removed.stderr
    payloads = [json.loads(line)["payload"] for line in (home / "audit.jsonl").read_text().splitlines()]
    added = [p for p in payloads if p["type"] == "suite_added"]
    assert [(p["spec"]["name"], p["reason"]) for p in added] == [("more habits", "a second regression set")]
    assert [p["name"] for p in payloads if p["type"] == "suite_removed"] == ["more habits"]
    verified = retain("verify", home)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_bad_suite_input_is_one_line_and_changes_nothing(tmp_path, user_model):
    base, suite, skill = user_model
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "c" "answer": "d"}\n')
    run = retain("init", tmp_path / "home", "--model", base, "--suite", bad)
    one_line_error(run)
    assert f"{bad}:2" in run.stderr and not (tmp_path / "home").exists()

    home = tmp_path / "home"
    assert retain("init", home, "--model", base, "--suite", suite, "--protection", "").returncode == 0
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in home.iterdir() if p.is_file()}
    one_line_error(retain("suite", "remove", home, "no such item"))
    one_line_error(retain("suite", "add", home, bad))
    one_line_error(retain("learn", "embedded", skill, "--method", "sdft+ewc", "--out", tmp_path / "out",
                          "--prior", tmp_path / "missing.jsonl"))
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in home.iterdir() if p.is_file()}
    assert after == before and not (tmp_path / "out").exists()
