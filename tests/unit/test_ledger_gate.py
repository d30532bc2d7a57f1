"""The promotion gate: the rule worked by hand, and its decisions as the ledger records them."""

from __future__ import annotations

from rich.console import Console

from retain.ledger import store
from retain.ledger.gate import GatePolicy, decide, render

CHAMPION = {"probes": {"p1": 0.50, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.10}}


def test_accepts_drops_within_five_percent_and_a_new_skill_at_the_floor():
    candidate = {"probes": {"p1": 0.475, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.50}}
    result = decide(GatePolicy(), "new", CHAMPION, candidate)
    assert result.decision == "accepted" and result.reasons == [] and result.promote
    # 0.475 is exactly a 5% drop from 0.5: allowed; the limit is recorded per check.
    p1 = [c for c in result.checks if c["name"] == "p1"][0]
    assert p1["limit"] == 0.5 * 0.95 and p1["passed"]


def test_rejects_a_drop_over_the_limit_and_a_new_skill_below_the_floor():
    candidate = {"probes": {"p1": 0.47, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.49}}
    result = decide(GatePolicy(), "new", CHAMPION, candidate)
    assert result.decision == "rejected" and not result.promote
    assert result.reasons == ["probe p1 dropped 6.0% (0.500 -> 0.470); the limit is 5.0%",
                              "new skill new scored 0.49, below the floor 0.500"]


def test_limits_are_per_home_and_force_promotes_with_the_reason():
    candidate = {"probes": {"p1": 0.45, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.30}}
    assert decide(GatePolicy(max_drop=0.1, floor=0.3), "new", CHAMPION, candidate).decision == "accepted"
    forced = decide(GatePolicy(), "new", CHAMPION, candidate, force="hotfix approved by ops")
    assert forced.decision == "forced" and forced.promote and len(forced.reasons) == 2
    assert forced.forced_reason == "hotfix approved by ops"


def test_a_skill_missing_from_the_candidate_fails():
    result = decide(GatePolicy(), "new", CHAMPION, {"probes": {"p1": 0.5}, "skills": {"add": 0.9, "new": 0.9}})
    assert result.reasons == ["probe p2 was not evaluated on the candidate"]


def test_the_table_shows_every_check():
    candidate = {"probes": {"p1": 0.47, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.60}}
    console = Console(record=True, width=120)
    console.print(render(decide(GatePolicy(), "new", CHAMPION, candidate), "v3", "v2"))
    text = console.export_text()
    assert "gate: v3 vs champion v2" in text and "rejected: champion unchanged" in text
    assert text.count("pass") == 3 and text.count("FAIL") == 1


def test_ledger_records_accept_reject_and_force_with_reasons(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    accepted = learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    rejected = learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.9,
                     probes={"p1": 0.3, "p2": 0.8})
    forced = learn(home, change_one_layer(base, tmp_path / "m4", delta=0.03), "sub", 0.2,
                   force="needed for the demo")
    assert (accepted.decision.decision, rejected.decision.decision, forced.decision.decision) == \
        ("accepted", "rejected", "forced")
    status = {r["name"]: r["status"] for r in home.versions()}
    assert status == {"v1": "superseded", "v2": "superseded", "v3": "rejected", "v4": "champion"}
    gate_v3 = store.gates_of(home.conn, "v3")[0]
    assert gate_v3["champion"] == "v2" and gate_v3["decision"] == "rejected"
    assert gate_v3["reasons"] == ["probe p1 dropped 40.0% (0.500 -> 0.300); the limit is 5.0%"]
    gate_v4 = store.gates_of(home.conn, "v4")[0]
    assert gate_v4["forced_reason"] == "needed for the demo"
    assert gate_v4["reasons"] == ["new skill sub scored 0.2, below the floor 0.500"]
    promoted = [e["payload"] for e in store.events_of(home.conn) if e["type"] == "promoted"]
    assert [(p["version"], p["previous"], p["reason"]) for p in promoted] == [
        ("v1", None, "base model"), ("v2", "v1", "passed the gate"), ("v4", "v2", "needed for the demo")]
