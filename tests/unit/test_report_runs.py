"""The demo's and the consolidation bench's ``report.html``: summary tables with mean and spread worked by hand,
accuracy matrices averaged over seeds, prior-skill curves, settings. Pages are parsed as HTML."""

from __future__ import annotations

import math
import pytest
from retain.errors import RetainError
from retain.report.runs_report import spread, write_bench_report, write_demo_report


def _run(method: str, seed: int, matrix, probe_matrix, new: float, kept: float) -> dict:
    """One run as the demo's results.json holds it (the fields the report reads)."""
    return {"scenario": "demo-stream", "method": method, "seed": seed, "tasks": ["rotr", "swap"],
            "probes": ["reverse", "in-context"], "matrix": matrix, "probe_matrix": probe_matrix,
            "train_seconds": [1.0, 2.0], "extra_memory_bytes": 0,
            "summary": {"new_skill_accuracy": new, "prior_retention": kept, "bwt": -0.25 * (seed + 1)}}


DEMO = {
    "config": {"n_train": 8, "n_test": 4, "methods": ["sft", "sdft"], "epochs": 1, "lr": 0.0003, "seeds": 2,
               "teacher": "ema", "sdft_options": {"skip_tokens": 0}},
    "capability": {"probes": {"reverse": 1.0, "in-context": 0.75},
                   "new_skills": {"rotr": {"student": 0.0, "teacher": 1.0, "gap": 1.0},
                                  "swap": {"student": 0.25, "teacher": 0.75, "gap": 0.5}}},
    "runs": [
        _run("sft", 0, [[0, 0], [1, 0], [0.5, 1]], [[1, 1], [0.5, 1], [0.5, 0.5]], 0.5, 0.5),
        _run("sdft", 0, [[0, 0], [1, 0], [1, 1]], [[1, 1], [1, 1], [1, 0.5]], 0.9, 0.75),
        _run("sft", 1, [[0, 0], [0.5, 0], [0, 0.5]], [[1, 1], [1, 1], [0.5, 1]], 0.7, 0.25),
        _run("sdft", 1, [[0, 0], [1, 0], [1, 0.5]], [[1, 1], [1, 1], [1, 1]], 1.0, 1.0),
    ],
    "seconds": 12.0,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory, parse_html):
    out = tmp_path_factory.mktemp("demo")
    assert write_demo_report(DEMO, out) == out / "report.html"
    return parse_html((out / "report.html").read_text())


def _table(section, caption_start: str):
    return next(t for t in section.all("table") if t.one("caption").text().startswith(caption_start))


def test_demo_summary_gives_mean_and_sample_spread_over_seeds(demo):
    table = _table(demo.one("section", id="summary"), "Each method")
    headers = [th.text() for th in table.one("thead").all("th")]
    assert headers == ["method", "new skill", "prior kept", "BWT"]
    rows = {row[0]: row for row in table.rows()}
    # sft: new 0.5 and 0.7 -> mean 60%, sample sd 0.1414; bwt -0.25 and -0.5 -> -0.375 +- 0.1768
    assert rows["sft"] == ["sft", "60.0% \u00b1 14.1%", "37.5% \u00b1 17.7%", "-0.375 \u00b1 0.177"]
    assert rows["sdft"] == ["sdft", "95.0% \u00b1 7.1%", "87.5% \u00b1 17.7%", "-0.375 \u00b1 0.177"]
    assert "over 2 seeds" in table.one("caption").text()
    said = [p.text() for p in demo.one("section", id="summary").all("p")]
    assert "With sdft the model scored 95% on each new skill right after learning it and ended with 88% of its " \
           "prior-skill accuracy." in said


def test_demo_matrices_and_prior_curves_are_means_over_seeds(demo):
    matrices = demo.one("section", id="matrices")
    assert matrices.one("svg").attrs["aria-label"] == "Accuracy matrices of the demo, one per method"
    sft = _table(matrices, "sft: accuracy on each new skill").rows()
    assert sft == [["before", "0.0%", "0.0%"], ["after rotr", "75.0%", "0.0%"], ["after swap", "25.0%", "75.0%"]]
    prior = demo.one("section", id="prior")
    mean = _table(prior, "Mean prior-skill accuracy").rows()
    # sft after rotr: seed 0 (0.5, 1), seed 1 (1, 1) -> per probe 0.75, 1 -> mean 87.5%
    assert mean[1] == ["after rotr", "87.5%", "100.0%"]
    svg_text = [t.text() for t in prior.one("svg").all("text")]
    assert "sft (mean of probes)" in svg_text and "sdft (mean of probes)" in svg_text


def test_demo_settings_and_capability_are_shown(demo):
    settings = {row[0]: row[1] for row in demo.one("section", id="settings").one("table").rows()}
    assert settings["lr"] == "0.0003" and settings["teacher"] == "ema"
    assert settings["sdft_options"] == '{"skip_tokens": 0}'
    before = demo.one("section", id="before")
    assert _table(before, "Prior skills").rows() == [["reverse", "100%"], ["in-context", "75%"]]
    assert _table(before, "New skills").rows() == [["rotr", "0%", "100%"], ["swap", "25%", "75%"]]


def _method(runs: list[dict], summary: dict) -> dict:
    return {"spec": "sft", "options": {}, "runs": runs, "summary": summary}


BENCH = {
    "benchmark": "consolidation", "split": "test", "quick": True, "seeds": [0, 1],
    "methods": {"sft": "sft", "replay": "sft+replay"},
    "domains": {"language": {"demo-stream": {
        "kind": "new skills + prior-skill probes", "tasks": ["a", "b"], "probes": ["p", "q"], "budget": "tiny",
        "methods": {
            "sft": _method([{"seed": s, "R": [[0, 0], [1, 0], [0, 1]], "probe_R": [[1, 1], [1, 0], [0, 0]]}
                            for s in (0, 1)],
                           {"acc": {"mean": 0.5, "std": 0.0}, "bwt": {"mean": float("nan"), "std": float("nan")},
                            "memory_bytes": {"mean": 0.0, "std": 0.0}, "retention": {"mean": 0.0, "std": 0.0}}),
            "replay": _method([{"seed": 0, "R": [[0, 0], [1, 0], [1, 1]], "probe_R": [[1, 1], [1, 1], [1, 0]]},
                               {"seed": 1, "R": [[0, 0], [1, 0], [0, 1]], "probe_R": [[1, 1], [1, 1], [0, 0]]}],
                              {"acc": {"mean": 0.75, "std": 0.25}, "bwt": {"mean": None, "std": None},
                               "memory_bytes": {"mean": 2500.0, "std": 0.0},
                               "retention": {"mean": 0.5, "std": 0.5}}),
        }}}},
}


def test_bench_report_summary_matrices_prior_curves_and_settings(tmp_path, parse_html):
    page = parse_html(write_bench_report(BENCH, tmp_path).read_text())
    section = page.one("section", id="language-demo-stream")
    summary = _table(section, "language / demo-stream").rows()
    assert summary == [["sft", "50.0% \u00b1 0.0%", "-", "0.0% \u00b1 0.0%", "0 B \u00b1 0 B"],
                       ["replay", "75.0% \u00b1 25.0%", "-", "50.0% \u00b1 50.0%", "2.5 kB \u00b1 0 B"]]
    assert _table(section, "replay: accuracy matrix R").rows()[2] == ["after b", "50.0%", "100.0%"]
    assert _table(section, "Mean prior-skill accuracy").rows()[2] == ["after b", "0.0%", "25.0%"]
    assert _table(section, "Method settings").rows()[1] == ["replay", "sft", "{}"]
    assert len(section.all("svg")) == 2
    retention = _table(page.one("section", id="language"), "language: retention").rows()
    assert retention == [["sft", "0.0% \u00b1 0.0%"], ["replay", "50.0% \u00b1 50.0%"]]
    reading = page.one("section", id="reading")
    settings = {row[0]: row[1] for row in _table(reading, "Settings of this run").rows()}
    columns = reading.one("section", id="reading-columns")
    assert [row[0] for row in columns.one("table").rows()] == ["ACC", "BWT", "retention", "extra memory"]
    assert "open" not in columns.one("details").attrs
    assert settings["seeds"] == "[0, 1]" and settings["quick budget"] == "true"


def test_spread_formats_each_unit_and_undefined_metrics():
    assert spread("acc", 0.5, 0.25, 3) == "50.0% \u00b1 25.0%"
    assert spread("acc", 0.5, 0.25, 1) == "50.0%"
    assert spread("bwt", -0.125, 0.5, 2) == "-0.125 \u00b1 0.500"
    assert spread("time_ratio", 1.5, 0.25, 2) == "1.50x \u00b1 0.25x"
    assert spread("bwt", math.nan, math.nan, 2) == spread("bwt", None, None, 2) == "-"


def test_report_folder_must_exist(tmp_path):
    with pytest.raises(RetainError, match="does not exist"):
        write_demo_report(DEMO, tmp_path / "missing")
    assert not (tmp_path / "missing").exists()

