"""Which feedback a learn may use: feedback a promoted version learned is consumed and never offered again,
feedback the guard quarantined never is either, and feedback a version the gate rejected trained on is offered
again (that version changed nothing). The versions are recorded through the ledger as a learn records them."""

from __future__ import annotations

from retain.data.skills import Example, Skill
from retain.home.feedback import add_feedback, corrections_to_learn, list_feedback
from retain.home.versions import materialize
from retain.ledger.operations import Candidate, record_candidate
from retain.ledger.store import known_scores

FACTS = {"capital zorbia": "kelm", "capital plokia": "vrod", "capital quvania": "tesk"}


def test_only_a_promoted_version_consumes_and_quarantine_is_final(tmp_path, tiny_home):
    root = tiny_home.root
    ids = [add_feedback(root, prompt=p, answer="ababb", correction=c) for p, c in FACTS.items()]
    folder = materialize(tiny_home, "v1", tmp_path / "model")

    def record(used: list[str], force: str | None, screen: dict | None = None):
        skill = Skill("feedback", test=[Example("capital zorbia", "kelm")])
        with tiny_home.writing("learn"):
            champion = known_scores(tiny_home.conn, tiny_home.champion())
            return record_candidate(tiny_home, Candidate(
                folder=folder, kind="full", method="sdft", skill=skill, scores={**champion, "skills": {"feedback": 0.0}},
                champion_scores={**champion, "skills": {"feedback": 0.0}}, config={"feedback": {"consumed": used}},
                screen=screen), force)

    assert not record(ids, None).promoted  # the new skill scores 0, under the gate's floor
    assert [(f["status"], f["by"], f["tried"]) for f in list_feedback(root)] == [("new", None, ["v2"])] * 3
    assert [f["id"] for f in corrections_to_learn(root)] == ids
    screen = {"flagged": [{"line": 2, "sha256": "0" * 64, "reasons": ["planted"]}], "quarantined": True,
              "accepted_flagged": None, "summary": {}, "canary": None}
    assert record(ids, "the test promotes it", screen).promoted
    assert [(f["status"], f["by"]) for f in list_feedback(root)] == \
        [("consumed", "v3"), ("quarantined", "v3"), ("consumed", "v3")]
    assert corrections_to_learn(root) == []
    later = add_feedback(root, prompt="capital tenia", correction="olb")
    assert [f["id"] for f in corrections_to_learn(root)] == [later]
    assert [f["id"] for f in corrections_to_learn(root, since="v3")] == [later]
    assert corrections_to_learn(root, since="v3") == corrections_to_learn(root, since="v2")
