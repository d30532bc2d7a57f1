"""``retain report``'s library: a home built through the real ledger API on the embedded model (accepted,
rejected, forced, rolled back, a branch after the rollback), its report parsed as HTML and checked element by
element against what the ledger recorded."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.ledger import lock
from retain.ledger.gate import GatePolicy
from retain.ledger.operations import Candidate, init_home, record_candidate, rollback
from retain.ledger.store import known_scores
from retain.models.loading import resolve_model_path
from retain.report.charts_home import layout
from retain.report.home_report import build_home_report
from retain.report import html as report_html
from retain.report.html import render_home, write_home_report

FORCED = "sub is needed for the release"
ROLLBACK = "sub answers drift"


# -- a home through the real ledger API --------------------------------------------------------------------

def _variant(dst: Path, delta: float) -> Path:
    """The embedded model with one tensor moved by ``delta`` (a candidate that changed one layer)."""
    shutil.copytree(resolve_model_path("embedded"), dst)
    weights = load_file(dst / "model.safetensors")
    name = sorted(weights)[3]
    weights[name] = weights[name] + delta
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def _skill(name: str) -> Skill:
    examples = [Example(prompt=f"{name} {i}?", demonstration=f"{name}-{i}", answer=str(i)) for i in range(4)]
    return Skill(name=name, train=examples, test=examples, scorer="exact")


def learn(home, folder: Path, name: str, new: float, probes: dict[str, float] | None = None,
          force: str | None = None):
    """Record ``folder`` as a candidate that learned ``name`` to ``new``, with its data file and seed."""
    data = folder.parent / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{name} {i}?", "demonstration": f"{name}-{i}"}) + "\n"
                            for i in range(4)))
    with home.writing("learn"):
        champion = known_scores(home.conn, home.champion())
        champion["skills"].setdefault(name, 0.0)
        scores = {"probes": dict(probes or champion["probes"]),
                  "skills": {**{k: v for k, v in champion["skills"].items() if k != name}, name: new}}
        return record_candidate(home, Candidate(
            folder=folder, kind="full", method="sft", skill=_skill(name), scores=scores, champion_scores=champion,
            seed=7, options={"lr": 1e-4}, data=[("source", data)], wall_seconds=3.25), force)


def story_home(tmp: Path):
    """v1 base; v2 add accepted; v3 mul rejected (a probe dropped); v4 sub forced; rollback to v2; v5 div."""
    home = init_home(tmp / "home", resolve_model_path("embedded"), "embedded", GatePolicy(max_drop=0.05, floor=0.5),
                     [_skill("reverse"), _skill("upper")], {"probes": {"reverse": 0.9, "upper": 1.0}})
    learn(home, _variant(tmp / "m2", 0.01), "add", 0.9)
    learn(home, _variant(tmp / "m3", 0.02), "mul", 0.8, probes={"reverse": 0.5, "upper": 1.0})
    learn(home, _variant(tmp / "m4", 0.03), "sub", 0.3, force=FORCED)
    rollback(home, "v2", ROLLBACK)
    learn(home, _variant(tmp / "m5", 0.04), "div", 0.7)
    home.conn.close()
    return tmp / "home"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return story_home(tmp_path_factory.mktemp("story"))


@pytest.fixture(scope="module")
def page(home, tmp_path_factory, parse_html):
    out = tmp_path_factory.mktemp("out") / "report.html"
    write_home_report(home, out)
    return parse_html(out.read_text())


def _cards(page) -> dict:
    return {card.attrs["data-version"]: card for card in page.all("details", class_="version")}


def test_every_version_has_a_card_with_its_status(page):
    cards = _cards(page)
    assert {v: c.attrs["data-status"] for v, c in cards.items()} == {
        "v1": "superseded", "v2": "superseded", "v3": "rejected", "v4": "rolled-back", "v5": "champion"}
    assert page.one("dd", id="verification-status").attrs["data-ok"] == "yes"
    summary = page.one("section", id="summary").text()
    assert "v5" in summary and "1 rejected" in summary and "1 rolled-back" in summary


def test_rejected_card_gives_the_gate_reasons_and_checks(page):
    card = _cards(page)["v3"]
    gate = card.one("div", class_="gate")
    assert gate.attrs["data-decision"] == "rejected"
    reasons = [li.text() for li in gate.one("ul", class_="reasons").all("li")]
    assert reasons == ["probe reverse dropped 44.4% (0.900 -> 0.500); the limit is 5.0%"]
    checks = {row[1]: row for row in gate.one("table").rows()}
    assert checks["reverse"] == ["probe", "reverse", "0.900", "0.500", "relative drop", ">= 0.855", "FAIL"]
    assert checks["mul"][-1] == "pass"


def test_forced_promotion_and_rollback_are_recorded_with_their_reasons(page):
    cards = _cards(page)
    forced = cards["v4"]
    assert forced.attrs.get("data-forced") == "yes" and "data-forced" not in cards["v3"].attrs
    assert forced.one("div", class_="gate").attrs["data-decision"] == "forced"
    assert FORCED in forced.one("p", class_="forced").text()
    events = {row[2]: row for row in cards["v2"].all("table")[-1].rows()}
    assert "rolled_back" in events and f"reason: {ROLLBACK}" in events["rolled_back"][4]
    assert "previous: v4" in events["rolled_back"][4]


def test_cards_hold_recipe_data_hashes_seed_times_and_drift(page, home):
    card = _cards(page)["v5"]
    facts = {dt.text(): dd.text() for dt, dd in zip(card.all("dt"), card.all("dd"))}
    assert facts["Parent"] == "v2" and facts["Seed"] == "7"
    assert facts["Recipe"].startswith("method sft, kind full, lr 0.0001") and '"lr": 0.0001' in facts["Recipe"]
    assert "3.2 s" in facts["Created"] or "3.3 s" in facts["Created"]
    data = card.all("table")[0].rows()
    expected = hashlib.sha256(Path(data[0][4]).read_bytes()).hexdigest()
    assert data[0][:2] == ["source", "div.jsonl"] and data[0][3] == expected
    drift = card.one("div", class_="drift")
    assert "Drift from v2" in drift.text() and "1 of 38 tensors changed" in drift.text()
    changes = {row[0]: row for row in drift.one("table").rows()}
    assert changes["skill div"] == ["skill div", "0.000", "0.700", "+0.700", "-"]


def test_heatmap_labels_every_cell_and_marks_failed_checks(page):
    section = page.one("section", id="scores")
    table = section.all("table")[0]
    headers = [th.text() for th in table.one("thead").all("th")]
    assert headers == ["version", "status", "reverse (probe)", "upper (probe)", "add (skill)", "div (skill)",
                       "mul (skill)", "sub (skill)"]
    rows = {row[0]: row for row in table.rows()}
    assert rows["v3"][2] == "0.500 \u2717" and rows["v4"][7] == "0.300 \u2717" and rows["v5"][5] == "0.700"
    assert rows["v1"][5] == "\u2013"
    svg_text = [t.text() for t in section.one("svg").all("text")]
    assert "0.50 \u2717" in svg_text and "0.30 \u2717" in svg_text and "floor 0.50" in svg_text


def test_lineage_graph_labels_each_version_and_branches_after_the_rollback(page, home):
    labels = [t.text() for t in page.one("section", id="lineage").one("svg").all("text")]
    by_version = {label.split()[0]: label for label in labels if label.startswith("v")}
    assert set(by_version) >= {"v1", "v2", "v3", "v4", "v5"}
    assert "REJECTED" in by_version["v3"] and "ROLLED-BACK" in by_version["v4"]
    assert f"FORCED: {FORCED}" in by_version["v4"] and "CHAMPION" in by_version["v5"]
    assert "rollback from v4" in by_version["v2"] and "rollback" in labels
    placed = layout(build_home_report(home).versions)
    assert [placed[v].row for v in ("v1", "v2", "v3", "v4", "v5")] == [0, 1, 2, 3, 4]
    assert placed["v1"].lane == placed["v2"].lane == placed["v4"].lane == 0
    assert placed["v3"].lane == 1 and placed["v5"].lane == 2


def test_the_report_changes_nothing_and_needs_no_lock(home, tmp_path, parse_html):
    def snapshot() -> dict[str, str]:
        return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(home.rglob("*")) if p.is_file() and p.name != "lock"}

    before = snapshot()
    with lock.exclusive(home / "lock", "someone learning"):
        write_home_report(home, tmp_path / "r.html")
    assert snapshot() == before
    assert parse_html((tmp_path / "r.html").read_text()).one("dd", id="verification-status").attrs["data-ok"] == "yes"


def test_a_changed_audit_log_shows_as_a_mismatch(home, tmp_path, parse_html):
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    log = copy / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"skill":"mul"', b'"skill":"mux"', 1))
    page = parse_html(render_home(build_home_report(copy)))
    assert page.one("dd", id="verification-status").attrs["data-ok"] == "no"
    problems = [li.text() for li in page.one("section", id="verification").one("ul", class_="bad").all("li")]
    assert any(p.startswith("audit.jsonl:") and "hash chain broken" in p for p in problems), problems


def test_quarantine_section_shows_guard_entries_from_the_audit_log(home, tmp_path, page, parse_html):
    assert "no quarantined lines" in page.one("section", id="quarantine").text()
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    from retain.ledger.core import Home

    opened = Home.open(copy)
    lines = [{"line": 3, "reason": "trigger phrase", "sha256": "ab" * 32},
             {"line": 9, "reason": "answer contradicts the suite", "sha256": "cd" * 32}]
    with opened.writing("guard"):
        opened.commit([{"type": "quarantined", "version": None, "file": "add.jsonl", "lines": lines}])
    opened.conn.close()
    page = parse_html(render_home(build_home_report(copy)))
    table = page.one("section", id="quarantine").one("table", class_="quarantine")
    assert [th.text() for th in table.one("thead").all("th")] == ["line", "reason", "sha256"]
    assert table.rows() == [["3", "trigger phrase", "ab" * 32], ["9", "answer contradicts the suite", "cd" * 32]]
    assert "file: add.jsonl" in table.one("caption").text()
    assert "2 line(s) in 1 guard event(s)" in page.one("section", id="summary").text()


def test_guard_entries_of_another_shape_are_found_by_their_quarantine_field(home, tmp_path, parse_html):
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    from retain.ledger.core import Home

    opened = Home.open(copy)
    with opened.writing("guard"):
        opened.commit([{"type": "guard_screened", "version": None, "kept": 40, "quarantined": ["bad 1", "bad 2"]},
                       {"type": "guard_screened", "version": None, "kept": 12, "quarantined": []}])
    opened.conn.close()
    page = parse_html(render_home(build_home_report(copy)))
    table = page.one("section", id="quarantine").one("table", class_="quarantine")
    assert table.rows() == [["bad 1"], ["bad 2"]] and "kept: 40" in table.one("caption").text()


def test_bad_input_is_one_error_and_writes_nothing(home, tmp_path):
    with pytest.raises(RetainError, match="not a retain home"):
        write_home_report(tmp_path, tmp_path / "r.html")
    with pytest.raises(RetainError, match="does not exist"):
        write_home_report(home, tmp_path / "missing" / "r.html")
    with pytest.raises(RetainError, match="inside the home"):
        write_home_report(home, home / "report.html")
    assert not (home / "report.html").exists() and not (tmp_path / "r.html").exists()


def test_a_long_home_is_paged_and_its_cards_collapsed(home, monkeypatch, parse_html):
    monkeypatch.setattr(report_html, "HEATMAP_PAGE", 2)
    monkeypatch.setattr(report_html, "OPEN_CARDS", 3)
    page = parse_html(render_home(build_home_report(home)))
    pages = page.one("section", id="scores").kids("details")
    assert [d.kids("summary")[0].text() for d in pages] == ["v1 to v2 (2 versions)", "v3 to v4 (2 versions)",
                                                           "v5 to v5 (1 versions)"]
    assert ["open" in d.attrs for d in pages] == [False, False, True]
    assert [len(d.one("table").rows()) for d in pages] == [2, 2, 1]
    cards = {c.attrs["data-version"]: "open" in c.attrs for c in page.all("details", class_="version")}
    assert cards == {"v1": False, "v2": False, "v3": False, "v4": False, "v5": True}
    assert page.one("input", id="card-filter").attrs["type"] == "search"


def test_measured_drift_is_retain_diff_against_the_parent(home, tmp_path):
    from retain.ledger.core import Home
    from retain.home.versions import diff

    before = {p: p.read_bytes() for p in (home / "audit.jsonl", home / "ledger.sqlite")}
    card = build_home_report(home, measure_drift=True).version("v5")
    assert {p: p.read_bytes() for p in before} == before
    opened = Home.open(home)
    expected = diff(opened, "v2", "v5", tmp_path)
    opened.conn.close()
    assert card.drift.measured == {"parameters": expected["parameters"], "output": expected["drift"]}
    assert card.drift.measured["parameters"]["changed"] == 1 and card.drift.measured["output"]["max_kl"] > 0
