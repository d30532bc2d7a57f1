"""``report.html`` as a user gets it: ``retain report`` on a home grown by the real CLI on the embedded model
(rejected, forced, rolled back), the consolidation bench and the demo writing theirs, and a real headless
Chromium loading the pages: no console errors and a screenshot that is not blank. Without Chromium the
browser checks are skipped with the reason printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))
FORCED = "ship rotr for the release"
ROLLBACK = "rotr breaks sort"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def retain(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """v1 base (floor 1.0, so a short training is rejected); v2 rejected; v3 the same data forced; rollback."""
    from retain.domains import language
    from retain.domains.language import Budget

    root = tmp_path_factory.mktemp("homes")
    skill = language.demo_skills(Budget(n_train=40, n_test=10), 0)[0][0]
    data = root / f"{skill.name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.prompt, "demonstration": e.demonstration}) + "\n"
                            for e in skill.train + skill.test))
    learn = [root / "home", data, "--method", "sft", "--epochs", "1", "--scorer", "alnum", "--quiet"]
    assert retain("init", root / "home", "--floor", "1.0", "--protection", "").returncode == 0
    assert retain("learn", *learn).returncode == 1
    forced = retain("learn", *learn, "--force", FORCED)
    assert forced.returncode == 0, forced.stderr
    assert retain("rollback", root / "home", "v1", "--reason", ROLLBACK).returncode == 0
    return root / "home"


def test_retain_report_tells_the_whole_story(home, tmp_path, parse_html):
    audit = (home / "audit.jsonl").read_bytes()
    done = retain("report", home, "--out", tmp_path / "story.html")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "story.html").resolve().as_uri() in done.stdout
    assert (home / "audit.jsonl").read_bytes() == audit
    page = parse_html((tmp_path / "story.html").read_text())
    cards = {c.attrs["data-version"]: c for c in page.all("details", class_="version")}
    assert {v: c.attrs["data-status"] for v, c in cards.items()} == {
        "v1": "champion", "v2": "rejected", "v3": "rolled-back"}
    assert cards["v2"].one("div", class_="gate").attrs["data-decision"] == "rejected"
    assert any("below the floor 1.000" in li.text() for li in cards["v2"].one("ul", class_="reasons").all("li"))
    assert FORCED in cards["v3"].one("p", class_="forced").text()
    events = {row[2]: row[4] for row in cards["v1"].all("table")[-1].rows()}
    assert f"reason: {ROLLBACK}" in events["rolled_back"]
    assert page.one("dd", id="verification-status").attrs["data-ok"] == "yes"


def test_retain_report_bad_input_exits_2_and_writes_nothing(home, tmp_path):
    for args, message in (((tmp_path, "--out", tmp_path / "r.html"), "not a retain home"),
                          ((home, "--out", home / "r.html"), "inside the home"),
                          ((home, "--out", tmp_path / "no" / "r.html"), "does not exist"),
                          ((home, "--colour"), "--colour")):
        done = retain("report", *args)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "r.html").exists() and not (home / "r.html").exists()


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = retain("bench", "consolidation", "--quick", "--domain", "control", "--methods", "sft,ewc", "--seeds", "1",
                  "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def test_bench_writes_report_beside_its_json(bench, parse_html):
    results = json.loads((bench / "consolidation.json").read_text())
    page = parse_html((bench / "report.html").read_text())
    for name, entry in results["domains"]["control"].items():
        section = page.one("section", id=f"control-{name}")
        summary = section.all("table")[0].rows()
        assert [row[0] for row in summary] == list(entry["methods"])
        acc = entry["methods"]["ewc"]["summary"]["acc"]["mean"]
        assert summary[1][1] == f"{acc:.1%}"


def test_demo_writes_report_and_prints_its_address(tmp_path, parse_html):
    from rich.console import Console

    from retain.demo import DemoConfig, run_demo

    console = Console(record=True, width=100)
    payload = run_demo(DemoConfig(n_train=16, n_test=4, epochs=1), tmp_path, console)
    assert (tmp_path / "report.html").resolve().as_uri() in console.export_text()
    page = parse_html((tmp_path / "report.html").read_text())
    # the section's first table is the summary; the glossary of its columns follows in a collapsed part
    rows = page.one("section", id="summary").all("table")[0].rows()
    new = {m: s["new_skill_accuracy"] for m, s in payload["summary"].items()}
    assert [(row[0], row[1]) for row in rows] == [(m, f"{v:.1%}") for m, v in new.items()]


def _browse(page: Path, shot: Path) -> list[str]:
    """Load ``page`` in headless Chromium, screenshot it; return the console messages it logged."""
    if CHROMIUM is None:
        # a warning shows in pytest's summary even under -q, where skip reasons do not
        warnings.warn("report browser checks skipped: no Chromium on this machine (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={shot.parent / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
        capture_output=True, text=True, timeout=900)
    assert shot.is_file(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def _not_blank(shot: Path) -> None:
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"{shot} is nearly blank ({len(colours)} colours)"
    # the content is spread over the page, not one strip: something is drawn in each third of its height
    width, height = image.size
    for k in range(3):
        band = image.crop((0, k * height // 3, width, (k + 1) * height // 3))
        assert len(band.getcolors(maxcolors=1 << 20) or range(99)) > 5, f"{shot}: third {k + 1} is blank"


def test_reports_load_in_a_real_browser(home, bench, tmp_path):
    story = tmp_path / "story.html"
    assert retain("report", home, "--out", story).returncode == 0
    for page in (story, bench / "report.html"):
        shot = tmp_path / f"{page.parent.name}-{page.stem}.png"
        errors = _browse(page, shot)
        assert errors == [], errors
        _not_blank(shot)
