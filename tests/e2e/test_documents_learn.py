"""``retain learn HOME --documents D --questions Q`` as a user runs it on the embedded model: the held-out
questions join the suite as a learned skill, and the score the home records for them is closed-book (the
version's answers to the question alone), not what it answers with the passage in its prompt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.bench.knowledge import PHRASINGS, fact_world, write_world

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))


def test_documents_are_learned_and_scored_closed_book(tmp_path, tiny_home):
    from retain.api import load_model
    from retain.evaluate.evaluation import accuracy
    from retain.home.versions import materialize
    from retain.ledger import store, suite

    world = fact_world(0, n_entities=2)
    assert len(world.train) == 4 * len(world.held_out) == 4 * 4 and len(PHRASINGS) == 5
    assert not {q["question"] for q in world.held_out} & {q["question"] for q in world.train}
    docs, questions, _ = write_world(world, tmp_path / "world")
    done = subprocess.run([RETAIN, "learn", str(tiny_home.root), "--documents", str(docs), "--questions",
                           str(questions), "--epochs", "1", "--quiet"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    spec = next(s for s in store.suite_specs(tiny_home.conn) if s["name"] == "questions")
    assert spec["kind"] == "skill"
    held = suite.load(tiny_home.objects, spec)
    assert {e.demonstration for e in held.test} <= set(world.passages.values())  # the passages are kept
    model = load_model(str(materialize(tiny_home, "v2", tmp_path / "v2")), device="cpu")
    recorded = tiny_home.version("v2")["record"]["scores"]["skills"]["questions"]
    closed, shown = accuracy(model, held, with_demonstration=False), accuracy(model, held, with_demonstration=True)
    assert recorded == closed and shown != closed
    bad = subprocess.run([RETAIN, "learn", str(tiny_home.root), "--documents", str(docs)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert bad.returncode == 2 and bad.stderr.strip().endswith("--documents and --questions go together")


def test_the_knowledge_benchmark_never_trains_on_a_question_it_scores_closed_book(tmp_path):
    """The documents learn trains on surface variants of each question; the benchmark hands its held-out
    questions over as prompts no variant may be, and the version records that it did (and ``reproduce`` would
    make the same variants from the record)."""
    from retain.bench.knowledge import run_one
    from retain.data.augment import augmented
    from retain.data.jsonl import read_skill
    from retain.home.documents import write_document_skill
    from retain.ledger.core import Home

    run = run_one("default", 0, tmp_path, n_entities=2, epochs=1)
    world = fact_world(0, n_entities=2)
    held = sorted(q["question"] for q in world.held_out)
    home = Home.open(tmp_path / "default-0")
    record = home.version("v2")["record"]
    assert run["variants"] == 4 and record["options"]["augment"] == {"copies": 4, "avoid": held}
    docs, questions, _ = write_world(world, tmp_path / "again")
    data = write_document_skill([docs], questions, tmp_path / "questions.jsonl")
    skill = read_skill(data, seed=0, test_fraction=record["options"]["test_fraction"], scorer="alnum")
    trained = {e.prompt for e in augmented(skill, 4, 0, held).train}
    assert len(trained) > 3 * len(skill.train) and not trained & set(held)
