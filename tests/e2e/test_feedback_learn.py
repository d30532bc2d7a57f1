"""Learning from feedback in a real home of the embedded model: ``retain feedback add|list|export`` through the
CLI, then a learn from the corrections. The version trains on exactly the examples the corrections make (its
stored data file, line by line), records the ids it consumed, and consumed feedback is never offered again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.errors import RetainError
from retain.home.feedback import corrections_to_learn, example_row, learn_from_feedback, list_feedback
from retain.ledger.core import Home

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))
FACTS = {"capital zorbia": "kelm", "capital plokia": "vrod", "capital quvania": "tesk", "capital midoria": "pral"}


def retain(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1", **env})


def test_corrections_become_the_examples_learned_and_are_consumed_once(tmp_path, tiny_home):
    env: dict[str, str] = {}  # the same key setting as the in-process tiny_home
    root = tiny_home.root
    for prompt, correction in FACTS.items():
        added = retain("feedback", "add", root, "--prompt", prompt, "--answer", "ababb", "--correction", correction,
                       "--user", "tester", env=env)
        assert added.returncode == 0, added.stderr
    bad = retain("feedback", "add", root, "--prompt", "x", "--rating", "3", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "retain: error: rating: must be -1 (bad), 0 or 1 (good), got 3"
    listed = json.loads(retain("feedback", "list", root, "--json", env=env).stdout)["feedback"]
    assert [(f["conversation"]["messages"][-1]["content"], f["correction"], f["status"]) for f in listed] == \
        [(p, c, "new") for p, c in FACTS.items()]
    ids = [f["id"] for f in listed]

    # promoted whatever the gate says (a rejected version leaves its feedback to the next learn: unit-tested)
    learned = retain("learn", root, "--from-feedback", "--epochs", "1", "--quiet", "--force", "the test", env=env)
    assert learned.returncode == 0, learned.stderr[-2000:]
    outcome = Home.open(root).version("v2")
    record = outcome["record"]
    assert record["config"]["feedback"]["consumed"] == ids
    source = next(d for d in record["data"] if d["role"] == "source")
    stored = tiny_home.objects.get(source["sha256"]).decode().splitlines()
    assert [json.loads(line) for line in stored] == [example_row(f["conversation"], f["correction"]) for f in listed]
    assert [json.loads(line)["demonstration"] for line in stored] == list(FACTS.values())
    # every correction is used by that version: trained on, or held back by the guard (its screen's lines)
    held = {line["line"] for line in record["screen"]["flagged"]} if record["screen"]["quarantined"] else set()
    assert [(f["status"], f["by"]) for f in list_feedback(root)] == \
        [("quarantined" if i in held else "consumed", outcome["name"]) for i in range(1, len(FACTS) + 1)]

    with pytest.raises(RetainError, match="0 new correction"):
        learn_from_feedback(root, epochs=1, quiet=True)
    again = retain("learn", root, "--from-feedback", env=env)
    assert again.returncode == 2 and "0 new correction(s)" in again.stderr
    assert retain("feedback", "add", root, "--prompt", "capital tenia", "--correction", "olb", env=env).returncode == 0
    assert [f["correction"] for f in corrections_to_learn(root)] == ["olb"]
    assert [f["correction"] for f in corrections_to_learn(root, since=outcome["name"])] == ["olb"]
    assert corrections_to_learn(root, since=None) == corrections_to_learn(root, since="v1")

    exported = retain("feedback", "export", root, tmp_path / "feedback.jsonl", env=env)
    assert exported.returncode == 0 and exported.stdout.strip().startswith("wrote 5 feedback")
    lines = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert [line["status"] != "new" for line in lines] == [True] * 4 + [False] and lines[0]["user"] == "tester"
    verified = retain("verify", root, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_answers_rated_good_join_the_rehearsal_once_and_reproduce(tmp_path):
    """A good rating on an answer the server gave keeps that answer: the learn from the corrections rehearses it
    with the answer as its stored target. An answer typed in with `retain feedback add` (not the model's), a bad
    rating and a conversation of several turns are not kept; a kept answer is not offered again."""
    from retain.home import init_home_from_model, protection
    from retain.home.feedback import add_feedback, answers_to_keep, commit_feedback, feedback_body
    from retain.home.workflows import reproduce

    root = init_home_from_model(tmp_path / "home", "embedded", options={"rehearsal": {"size": 48}}, per_item=8).root

    def served(rid: str, messages: list[dict], answer: str, rating: int) -> dict:
        return feedback_body({"response_id": rid, "version": "v1", "kind": "chat", "messages": messages,
                              "answer": answer}, rating, source="api")

    good = served("chatcmpl-1", [{"role": "user", "content": "upper kelm"}], "KELM", 1)
    bad = served("chatcmpl-2", [{"role": "user", "content": "upper tesk"}], "TESX", -1)
    turns = served("chatcmpl-3", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                  {"role": "user", "content": "upper vrod"}], "VROD", 1)
    commit_feedback(root, [good, bad, turns])
    typed = add_feedback(root, prompt="upper pral", answer="PRAL", rating=1)
    for prompt, correction in FACTS.items():
        add_feedback(root, prompt=prompt, answer="ababb", correction=correction)
    assert [f["id"] for f in answers_to_keep(root)] == [good["id"]]

    outcome = learn_from_feedback(root, epochs=1, quiet=True, force="the test")
    home = Home.open(root)
    record = home.version(outcome.version)["record"]
    assert record["config"]["protection"]["rehearsed_feedback"] == [good["id"]]
    assert "rehearsal: + 1 answers users rated good" in record["config"]["protection"]["notes"]
    _, extra = protection.decode(home.objects.get(record["artifacts"]["protection_sha256"]))["rehearsal"]
    assert ["upper kelm", False, "KELM"] in extra["answers"]
    assert not any(p in ("upper tesk", "upper vrod", "upper pral") for p, _, _ in extra["answers"])
    status = {f["id"]: (f["status"], f["by"]) for f in list_feedback(root)}
    assert status[good["id"]] == ("kept", outcome.version)
    assert status[bad["id"]] == status[turns["id"]] == status[typed] == ("new", None)
    assert answers_to_keep(root) == []
    assert reproduce(root, outcome.version)["match"]
