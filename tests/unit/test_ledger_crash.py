"""Kill a writer at named points (``RETAIN_TEST_KILL_AT``) in a subprocess; the home must stay consistent:
verify passes, the champion loads, no half-written version is visible, and the next write works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from retain.ledger.core import Home, is_home
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter

PRELUDE = "import sys\nfrom pathlib import Path\n"
# The writers run without torch or transformers loaded (the ledger needs neither to store), so each
# subprocess starts in a fraction of a second.
INIT = PRELUDE + """
from retain.data.skills import Example, Skill
from retain.ledger.gate import GatePolicy
from retain.ledger.operations import init_home
probe = Skill(name="p1", test=[Example(prompt="p1 0?", demonstration="p1-0", answer="0")])
init_home(Path(sys.argv[1]), Path(sys.argv[2]), "test", GatePolicy(), [probe], {"probes": {"p1": 0.5}})
"""
LEARN = PRELUDE + """
from retain.data.skills import Example, Skill
from retain.ledger.core import Home
from retain.ledger.operations import Candidate, record_candidate
home = Home.open(sys.argv[1])
add = Skill(name="add", test=[Example(prompt="add 0?", demonstration="add-0", answer="0")])
with home.writing("learn"):
    record_candidate(home, Candidate(folder=Path(sys.argv[2]), kind="full", method="sft", skill=add,
                     scores={"probes": {"p1": 0.5, "p2": 0.8}, "skills": {"add": 0.9}},
                     champion_scores={"probes": {"p1": 0.5, "p2": 0.8}, "skills": {"add": 0.0}}))
"""
ROLLBACK = PRELUDE + """
from retain.ledger.core import Home
from retain.ledger.operations import rollback
rollback(Home.open(sys.argv[1]), "v1")
"""
COMMIT_POINTS = ["before_audit", "audit_torn", "after_audit", "in_db_transaction", "after_db"]


def run_killed(script: str, point: str, *args: Path) -> None:
    env = {**os.environ, "RETAIN_TEST_KILL_AT": point}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 137, f"kill point {point} was never reached: {proc.stderr[-2000:]}"


def check_consistent(root: Path, tmp: Path) -> Home:
    report = verify(root)
    assert report.ok, report.problems
    home = Home.open(root)
    AutoModelForCausalLM.from_pretrained(home.materialize("champion", tmp / "champion", merge_adapter))
    return home


@pytest.mark.parametrize("point", ["object_written", "before_rename", "init_stored", *COMMIT_POINTS,
                                   "init_before_rename"])
def test_killed_init_leaves_no_home_and_init_can_run_again(tmp_path, point, tiny_model):
    base = tiny_model(tmp_path / "base")
    run_killed(INIT, point, tmp_path / "home", base)
    assert not is_home(tmp_path / "home") and not (tmp_path / "home").exists()
    subprocess.run([sys.executable, "-c", INIT, str(tmp_path / "home"), str(base)], check=True, timeout=900)
    assert [v["name"] for v in check_consistent(tmp_path / "home", tmp_path).versions()] == ["v1"]


@pytest.mark.parametrize("point", ["object_written", "before_rename", "artifacts_stored", *COMMIT_POINTS])
def test_killed_learn_leaves_the_home_consistent(tmp_path, point, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    home.conn.close()
    candidate = change_one_layer(base, tmp_path / "m2")
    run_killed(LEARN, point, home.root, candidate)
    home = check_consistent(home.root, tmp_path)
    committed = point in ("after_audit", "in_db_transaction", "after_db")
    versions = {v["name"]: v["status"] for v in home.versions()}
    # All or nothing: the version exists with its gate decision and promotion, or not at all.
    assert versions == ({"v1": "superseded", "v2": "champion"} if committed else {"v1": "champion"})
    outcome = learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.9)
    assert outcome.version == ("v3" if committed else "v2")
    assert verify(home.root).ok
    # The crashed writer's temporary files were swept by the next writer.
    assert list(home.tmp.iterdir()) == []


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_killed_rollback_leaves_the_home_consistent(tmp_path, point, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    home.conn.close()
    run_killed(ROLLBACK, point, home.root)
    home = check_consistent(home.root, tmp_path)
    assert home.champion() == ("v1" if point in ("after_audit", "in_db_transaction", "after_db") else "v2")
