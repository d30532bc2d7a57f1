"""The promotion gate: the paired test's p-values and Wilson intervals against hand computations, its decisions
on drops within noise and real drops, the unpaired and legacy rules, and its decisions as the ledger records
them (per-item outcomes kept in each version's record and paired on the same prompts)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from rich.console import Console

from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.gate import (Z95, GatePolicy, decide, discordant, mcnemar_p, pack_items, render, unpack_items,
                                wilson)

CHAMPION = {"probes": {"p1": 0.50, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.10}}


def _upper_tail(b: int, c: int) -> float:
    """P(X >= b), X ~ Binomial(b + c, 1/2), worked the other way round: one minus the lower tail, in fractions."""
    n = b + c
    lower = sum(Fraction(math.comb(n, k), 2 ** n) for k in range(b))
    return float(1 - lower)


@pytest.mark.parametrize("b, c, by_hand", [
    (3, 0, 1 / 8),            # 1.00 -> 0.94 on 50 items
    (9, 0, 1 / 512),          # 0.88 -> 0.70 on 50 items (if every change is a loss)
    (7, 2, (36 + 9 + 1) / 512),
    (2, 7, 1 - (1 + 9) / 512),
    (10, 3, (286 + 78 + 13 + 1) / 8192),
    (5, 5, 638 / 1024),
    (0, 0, 1.0),
])
def test_one_sided_exact_mcnemar_p_values_on_hand_worked_tables(b, c, by_hand):
    assert mcnemar_p(b, c) == pytest.approx(by_hand, abs=1e-15)
    assert mcnemar_p(b, c) == pytest.approx(_upper_tail(b, c), abs=1e-15)


def test_discordant_counts_losses_as_b_and_gains_as_c():
    before = [1, 1, 1, 0, 0, 1, 0]
    after = [1, 0, 0, 1, 0, 1, 0]
    assert discordant(before, after) == (2, 1)
    assert discordant([1.0, 0.5, 0.0], [0.5, 0.5, 1.0]) == (1, 1)  # partial credit: the sign of each change


@pytest.mark.parametrize("k, n", [(47, 50), (50, 50), (0, 50), (35, 44), (3, 7)])
def test_wilson_interval_solves_its_defining_equation(k, n):
    """Wilson's interval is the set of p with (k/n - p)^2 <= z^2 p (1 - p) / n: both ends solve it with
    equality (checked here without the closed form the implementation uses)."""
    lo, hi = wilson(k / n, n)
    assert 0 <= lo <= k / n <= hi <= 1
    for p in (lo, hi):
        if 0 < p < 1:
            assert (k / n - p) ** 2 == pytest.approx(Z95 ** 2 * p * (1 - p) / n, rel=1e-9, abs=1e-15)
    if k == n:
        assert hi == 1.0 and lo == pytest.approx(n / (n + Z95 ** 2))


def _items(passes: int, n: int, *, first: bool = True) -> list[float]:
    return [1.0] * passes + [0.0] * (n - passes) if first else [0.0] * (n - passes) + [1.0] * passes


def _gate(before: list[float], after: list[float], policy: GatePolicy = GatePolicy()):
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    champion = {"probes": {"reverse": mean(before)}, "skills": {"new": 0.0}}
    candidate = {"probes": {"reverse": mean(after)}, "skills": {"new": 0.9}}
    decision = decide(policy, "new", champion, candidate, champion_items={"probes": {"reverse": before}},
                      candidate_items={"probes": {"reverse": after}})
    return decision, decision.checks[0]


def test_a_drop_within_noise_passes_and_a_real_drop_fails():
    noise, row = _gate(_items(50, 50), _items(47, 50))  # 1.00 -> 0.94: three queries
    assert noise.decision == "accepted" and (row["b"], row["c"], row["n"]) == (3, 0, 50)
    assert row["p"] == pytest.approx(0.125) and row["test"] == "paired"
    real, row = _gate(_items(44, 50), _items(35, 50))  # 0.88 -> 0.70, every change a loss
    assert real.decision == "rejected" and (row["b"], row["c"]) == (9, 0) and row["p"] == pytest.approx(1 / 512)
    assert real.reasons == ["probe reverse dropped 18.0 points (0.880 -> 0.700; 9 items lost, 0 gained, "
                            "one-sided McNemar p = 0.00195 <= 0.05)"]
    assert row["champion_ci"] == [round(v, 4) for v in wilson(0.88, 50)]


def test_churn_counts_both_ways_and_alpha_is_the_homes():
    # 0.80 -> 0.70 with 7 items lost and 2 gained: p = 46/512 = 0.09, not significant at 0.05; at 0.1 it is
    before = [1.0] * 40 + [0.0] * 10
    after = [1.0] * 33 + [0.0] * 7 + [1.0] * 2 + [0.0] * 8
    assert discordant(before, after) == (7, 2)
    assert _gate(before, after)[0].decision == "accepted"
    assert _gate(before, after, GatePolicy(alpha=0.1))[0].decision == "rejected"
    # the same scores with no gains would be 5 lost and 0 gained: p = 1/32, significant
    assert _gate(before, [1.0] * 35 + [0.0] * 15)[1]["p"] == pytest.approx(1 / 32)
    assert _gate(before, [1.0] * 35 + [0.0] * 15)[0].decision == "rejected"


def test_a_gain_is_never_a_drop():
    decision, row = _gate(_items(35, 50), _items(44, 50))
    assert decision.decision == "accepted" and (row["b"], row["c"]) == (0, 9) and row["p"] == 1.0


def test_a_significant_drop_smaller_than_the_minimum_effect_passes():
    before, after = _items(900, 1000), _items(870, 1000)  # 3 points, p = 2**-30
    decision, row = _gate(before, after)
    assert decision.decision == "accepted" and row["p"] == pytest.approx(2.0 ** -30)
    assert _gate(before, after, GatePolicy(min_drop=0.02))[0].decision == "rejected"


def test_entries_without_items_are_checked_unpaired_and_say_so():
    candidate = {"probes": {"p1": 0.46, "p2": 0.70}, "skills": {"add": 0.90, "new": 0.60}}
    items = {"probes": {"p1": _items(25, 50)}}  # the champion's only: nothing to pair with
    result = decide(GatePolicy(), "new", CHAMPION, candidate, champion_items=items)
    rows = {c["name"]: c for c in result.checks}
    assert rows["p1"]["test"] == "unpaired (no per-item outcomes)" and rows["p1"]["passed"]  # 4 points
    assert not rows["p2"]["passed"] and rows["add"]["passed"]  # 10 points, 0 points
    assert result.reasons == ["probe p2 dropped 10.0 points (0.800 -> 0.700); unpaired (no per-item outcomes): a "
                              "drop of 5 points or more fails"]
    different = decide(GatePolicy(), "new", CHAMPION, candidate, champion_items=items,
                       candidate_items={"probes": {"p1": _items(23, 49)}})
    assert different.checks[0]["test"] == "unpaired (different items)"


def test_the_new_skill_must_reach_the_floor():
    candidate = {"probes": {"p1": 0.50, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.49}}
    result = decide(GatePolicy(), "new", CHAMPION, candidate)
    assert result.reasons == ["new skill new scored 0.49, below the floor 0.500"]
    assert decide(GatePolicy(floor=0.4), "new", CHAMPION, candidate).decision == "accepted"


def test_a_new_skill_below_the_floor_passes_when_its_gain_is_significant():
    """Paired with the champion on the new skill's 50 held-out items: 0 -> 15 right (c = 15, b = 0) is
    p = 2^-15, learned; 0 -> 2 right (p = 1/4) is not; the champion's own 3 right and the candidate's 1 lost
    count against the gain (c = 15, b = 1: p = 17/2^16)."""
    candidate = {"probes": {"p1": 0.50, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.30}}
    items = {"skills": {"new": _items(0, 50)}}
    learned = decide(GatePolicy(), "new", CHAMPION, candidate, champion_items=items,
                     candidate_items={"skills": {"new": _items(15, 50)}})
    row = learned.checks[-1]
    assert learned.decision == "accepted" and (row["b"], row["c"]) == (0, 15) and row["p"] == _upper_tail(15, 0)
    barely = decide(GatePolicy(), "new", CHAMPION, {**candidate, "skills": {"add": 0.90, "new": 0.04}},
                    champion_items=items, candidate_items={"skills": {"new": _items(2, 50)}})
    assert barely.decision == "rejected" and barely.checks[-1]["p"] == _upper_tail(2, 0) == 0.25
    assert barely.reasons == ["new skill new scored 0.04, below the floor 0.500, and its gain is not significant "
                              "(2 items gained, 0 lost, one-sided McNemar p = 0.25 > 0.05)"]
    # one item the champion had is lost: b = 1 weighs against the 15 gained
    mixed = decide(GatePolicy(), "new", CHAMPION, candidate, champion_items={"skills": {"new": _items(1, 50)}},
                   candidate_items={"skills": {"new": _items(15, 50, first=False)}})
    assert (mixed.checks[-1]["b"], mixed.checks[-1]["c"]) == (1, 15)
    assert mixed.checks[-1]["p"] == pytest.approx(float(_upper_tail(15, 1))) and mixed.decision == "accepted"
    # without per-item outcomes (or under a relative-drop home) only the floor counts
    assert decide(GatePolicy(), "new", CHAMPION, candidate).decision == "rejected"


def test_force_promotes_with_the_reason_and_a_missing_entry_fails():
    candidate = {"probes": {"p1": 0.10, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.30}}
    forced = decide(GatePolicy(), "new", CHAMPION, candidate, force="hotfix approved by ops")
    assert forced.decision == "forced" and forced.promote and len(forced.reasons) == 2
    assert forced.forced_reason == "hotfix approved by ops"
    result = decide(GatePolicy(), "new", CHAMPION, {"probes": {"p1": 0.5}, "skills": {"add": 0.9, "new": 0.9}})
    assert result.reasons == ["probe p2 was not evaluated on the candidate"]


def test_homes_recorded_with_max_drop_keep_their_relative_rule():
    legacy = GatePolicy(**{"max_drop": 0.05, "floor": 0.5})
    assert legacy.to_dict() == {"max_drop": 0.05, "floor": 0.5}
    assert GatePolicy(**GatePolicy().to_dict()) == GatePolicy()
    assert GatePolicy().to_dict() == {"alpha": 0.05, "min_drop": 0.05, "floor": 0.5}
    candidate = {"probes": {"p1": 0.475, "p2": 0.80}, "skills": {"add": 0.90, "new": 0.50}}
    accepted = decide(legacy, "new", CHAMPION, candidate)
    assert accepted.decision == "accepted" and accepted.checks[0]["limit"] == 0.5 * 0.95
    candidate["probes"]["p1"] = 0.47
    assert decide(legacy, "new", CHAMPION, candidate).reasons == [
        "probe p1 dropped 6.0% (0.500 -> 0.470); the limit is 5.0%"]
    for bad, field in ((GatePolicy(alpha=0.0), "alpha"), (GatePolicy(min_drop=1.5), "min_drop"),
                       (GatePolicy(max_drop=-1), "max_drop")):
        with pytest.raises(RetainError) as err:
            bad.validate()
        assert err.value.field == field


def test_items_pack_into_the_record_and_back():
    items = {"probes": {"reverse": [1.0, 0.0, 1.0], "partial": [0.5, 1.0]}, "skills": {}}
    packed = pack_items(items)
    assert packed == {"probes": {"partial": [0.5, 1.0], "reverse": "101"}, "skills": {}}
    assert unpack_items(json.loads(json.dumps(packed))) == items and unpack_items(None) == {}


def test_the_table_shows_intervals_p_values_and_verdicts():
    decision, _ = _gate(_items(44, 50), _items(35, 50))
    console = Console(record=True, width=160)
    console.print(render(decision, "v3", "v2"))
    text = console.export_text()
    assert "gate: v3 vs champion v2" in text and "rejected: champion unchanged" in text
    assert "0.880 [0.76, 0.94]" in text and "0.700 [0.56, 0.81]" in text
    assert "paired: 9 lost, 0 gained of 50" in text and "p = 0.00195" in text
    assert text.count("pass") == 1 and text.count("FAIL") == 1  # the new skill's floor, the probe


def test_rows_recorded_before_the_paired_test_still_render():
    """A gate row as the relative-drop gate recorded it (no test, no intervals) shows its limit."""
    from retain.ledger.gate import cells

    old = {"kind": "probe", "name": "p1", "champion": 0.9, "candidate": 0.5, "limit": 0.855, "passed": False}
    floor = {"kind": "new skill", "name": "add", "champion": None, "candidate": 0.6, "limit": 0.5, "passed": True}
    assert cells(old) == ["probe", "p1", "0.900", "0.500", "relative drop", ">= 0.855", "FAIL"]
    assert cells(floor) == ["new skill", "add", "-", "0.600", "floor", ">= 0.500", "pass"]


def _skill(name: str, n: int = 6) -> Skill:
    test = [Example(prompt=f"{name} {i}?", demonstration=f"{name}-{i}", answer=f"{i}") for i in range(n)]
    return Skill(name=name, train=test, test=test, scorer="exact")


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
    assert gate_v3["reasons"] == ["probe p1 dropped 20.0 points (0.500 -> 0.300); unpaired (no per-item "
                                  "outcomes): a drop of 5 points or more fails"]
    gate_v4 = store.gates_of(home.conn, "v4")[0]
    assert gate_v4["forced_reason"] == "needed for the demo"
    assert gate_v4["reasons"] == ["new skill sub scored 0.2, below the floor 0.500"]
    promoted = [e["payload"] for e in store.events_of(home.conn) if e["type"] == "promoted"]
    assert [(p["version"], p["previous"], p["reason"]) for p in promoted] == [
        ("v1", None, "base model"), ("v2", "v1", "passed the gate"), ("v4", "v2", "needed for the demo")]


def test_the_record_keeps_outcomes_and_the_gate_pairs_them(tmp_path, new_home, change_one_layer):
    """Per-item outcomes go into each version's record; the gate pairs the candidate's with the champion's item
    by item (a drop of the same size is refused when the items it lost are many and none came back)."""
    from retain.ledger.operations import Candidate, record_candidate

    home, base = new_home(tmp_path)
    probes = {"p1": 0.5, "p2": 0.8}
    p1_before = _items(25, 50)

    def learn(name, p1_after, folder):
        with home.writing("learn"):
            candidate = Candidate(
                folder=folder, kind="full", method="sft", skill=_skill(name),
                scores={"probes": {**probes, "p1": sum(p1_after) / 50}, "skills": {name: 0.9}},
                champion_scores={"probes": probes, "skills": {name: 0.0}},
                items={"probes": {"p1": p1_after}, "skills": {name: [1.0] * 9 + [0.0]}},
                champion_items={"probes": {"p1": p1_before}, "skills": {name: [0.0] * 10}})
            return record_candidate(home, candidate)

    # 0.50 -> 0.40: 5 items lost, none gained (p = 1/32): refused
    lost = learn("mul", _items(20, 50), change_one_layer(base, tmp_path / "m2"))
    assert lost.decision.decision == "rejected" and lost.decision.checks[0]["p"] == pytest.approx(1 / 32)
    # 0.50 -> 0.40 as 9 lost and 4 gained (p = 0.133): the items churned, no significant drop
    churn = [1.0] * 16 + [0.0] * 9 + [1.0] * 4 + [0.0] * 21
    kept = learn("add", churn, change_one_layer(base, tmp_path / "m3", delta=0.02))
    assert kept.decision.decision == "accepted", kept.decision.reasons
    row = kept.decision.checks[0]
    assert (row["b"], row["c"]) == (9, 4) and row["p"] == pytest.approx(_upper_tail(9, 4))
    record = home.version(kept.version)["record"]
    assert record["outcomes"]["probes"]["p1"] == "1" * 16 + "0" * 9 + "1" * 4 + "0" * 21
    assert record["outcomes"]["skills"]["add"] == "1" * 9 + "0"
    gate = [e["payload"] for e in store.events_of(home.conn) if e["type"] == "gate_decision"][-1]
    assert gate["champion_outcomes"]["probes"]["p1"] == "1" * 25 + "0" * 25
    assert gate["policy"] == {"alpha": 0.05, "min_drop": 0.05, "floor": 0.5}
    # the HTML report shows the same rows: intervals, the test, its p-value, and the home's rule
    from retain.report.html import write_home_report

    html = write_home_report(home.root, tmp_path / "report.html").read_text()
    assert "paired: 5 lost, 0 gained of 50" in html and "p = 0.0312" in html and "0.400 [0.28, 0.54]" in html
    assert "one-sided exact McNemar test on the same held-out items, p &lt;= 0.05" in html


def test_a_home_recorded_with_max_drop_still_loads_and_gates_by_it(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path, policy=GatePolicy(max_drop=0.05, floor=0.5))
    again = type(home).open(home.root)
    assert again.policy() == GatePolicy(max_drop=0.05, floor=0.5)
    outcome = learn(again, change_one_layer(base, tmp_path / "m2"), "add", 0.9, probes={"p1": 0.47, "p2": 0.8})
    assert outcome.decision.reasons == ["probe p1 dropped 6.0% (0.500 -> 0.470); the limit is 5.0%"]
