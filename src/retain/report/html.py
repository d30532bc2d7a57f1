"""Render reports as one self-contained static HTML file (Jinja2 templates in :mod:`retain.report.templates`).

The file holds its style, script and charts inline (charts are matplotlib SVG, see :mod:`retain.report.svg`),
so it opens from disk with no network and no server, and prints.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jinja2

from retain import __version__
from retain.errors import RetainError
from retain.report import templates
from retain.report.page import Chart, Page, Table

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
_UNIT = r"\s*(%|x|s|[kMG]?B)?"
# A cell that holds a number (with its unit, spread and failed-check mark): right-aligned, never wrapped.
_NUMERIC = re.compile(rf"^[+\-\u2212]?\d[\d.,]*(e[+-]?\d+)?{_UNIT}(\s*\u00b1\s*[\d.]+{_UNIT})?( \u2717)?$")


def num(value: float | None, digits: int = 3) -> str:
    """A score as text; ``-`` where there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; ``-`` where there is none."""
    return "-" if value is None else f"{value:.1%}"


def when(stamp: str) -> str:
    """An ISO 8601 UTC time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return stamp[:19].replace("T", " ") + " UTC" if stamp and len(stamp) >= 19 else stamp or "-"


def human_bytes(value: int | None) -> str:
    """A byte count in decimal units (B, kB, MB, GB)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def environment(env: dict[str, Any]) -> str:
    """The recorded environment in one line: packages, Python, threads, git commit."""
    parts = [f"{name} {version}" for name, version in env.get("packages", {}).items()]
    parts.append(f"python {env.get('python', '-')}")
    git = env.get("git")
    if git:
        parts.append(f"git {git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}")
    return ", ".join(parts)


# Training settings worth a glance on a version's card, wherever the recorded recipe nests them.
GLANCE = ("epochs", "lr", "batch_size", "teacher")


def settings(options: dict[str, Any]) -> list[tuple[str, str]]:
    """The :data:`GLANCE` settings found anywhere in a recorded recipe, first occurrence of each."""
    found: dict[str, str] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in GLANCE and not isinstance(inner, (dict, list)) and key not in found:
                    found[key] = str(inner)
                walk(inner)

    # a typed recipe says where each lives: training settings first, not a method's own batch_size (EWC's)
    recipe = options.get("recipe") if isinstance(options, dict) else None
    if isinstance(recipe, dict):
        walk(recipe.get("train", {}))
        walk(recipe.get("options", {}).get("sdft", {}))
    walk(options)
    return [(key, found[key]) for key in GLANCE if key in found]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.DictLoader({"base": templates.BASE, "macros": templates.MACROS,
                                                      "page": templates.PAGE, "home": templates.HOME}),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
    env.filters.update(num=num, pct=pct, when=when, bytes=human_bytes, environment=environment, settings=settings)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    env.filters["tojson"] = lambda value: json.dumps(value, sort_keys=True)
    env.tests["numeric"] = lambda text: bool(_NUMERIC.match(str(text)))
    env.tests["timestamp"] = lambda text: bool(_TIMESTAMP.match(str(text)))
    return env


def _render(template: str, title: str, lead: str, made_at: str, toc: list[tuple[str, str]], **context: Any) -> str:
    return _environment().get_template(template).render(
        title=title, lead=lead, made_at=when(made_at), toc=toc, version=__version__, css=templates.CSS,
        script=templates.SCRIPT, **context)


def render_page(page: Page) -> str:
    """A :class:`~retain.report.page.Page` (the demo's and the benchmarks' reports) as HTML."""
    return _render("page", page.title, page.lead, page.made_at, [(s.id, s.title) for s in page.sections],
                   sections=page.sections)


def write_html(text: str, out: Path) -> Path:
    """Write a rendered page; the folder must exist (a report never creates a user's folders)."""
    if not out.parent.is_dir():
        raise RetainError("the folder to write the report into does not exist", file=str(out.parent))
    if out.is_dir():
        raise RetainError("is a folder; give the report's file name, e.g. report.html", file=str(out))
    out.write_text(text, encoding="utf-8")
    return out


# -- a home's report ----------------------------------------------------------------------------------------

HEATMAP_PAGE = 40  # versions per heatmap figure: a long home is paged, newest page open
OPEN_CARDS = 12  # up to this many versions every card starts open; beyond, only the champion's


def _checks_table(gate: dict[str, Any]) -> Table:
    """Every check of one gate decision: both scores with their 95% intervals, the test, its p-value (or the
    limit a check is held to) and the result, as the gate prints them (:func:`retain.ledger.gate.cells`)."""
    from retain.ledger.gate import cells

    return Table(f"Checks against {gate['champion']} (scores with 95% Wilson intervals)",
                 ["check", "name", gate["champion"], gate["version"], "test", "p / limit", "result"],
                 [cells(c) for c in gate["checks"]])


def _gate_rule(policy: dict[str, Any]) -> str:
    """The home's gate rule in one sentence, from the policy its init recorded (either rule)."""
    from retain.ledger.gate import GatePolicy

    return GatePolicy(**policy).describe() if policy else "-"


def _data_table(card: Any) -> Table:
    rows = [[d["role"], d["name"], human_bytes(d["bytes"]), d["sha256"], d.get("path") or "-"]
            for d in card.record["data"]]
    return Table(f"Data of {card.name}", ["role", "file", "size", "sha256", "path when learned"], rows)


def _drift_text(card: Any) -> str:
    drift = card.drift
    if drift.tensors_changed is None:
        text = (f"A LoRA adapter of {drift.tensors_total} tensors on top of {drift.parent}."
                if card.record["kind"] == "adapter" else "Weights not compared (a manifest is missing).")
    else:
        text = f"{drift.tensors_changed} of {drift.tensors_total} tensors changed (compared by content hash)."
    measured = drift.measured
    if measured:
        p, out = measured["parameters"], measured["output"]
        text += f" Parameter distance L2 {p['l2']:.6g} ({p['relative']:.3%} of {drift.parent}'s norm)."
        if out and out["prompts"]:
            text += (f" Output drift over {out['prompts']} suite prompts: mean KL {out['mean_kl']:.6g}, "
                     f"max KL {out['max_kl']:.6g}.")
    return text


def _drift_table(card: Any) -> Table:
    rows = [[f"{r['kind']} {r['name']}", num(r["a"]), num(r["b"]),
             "-" if r["change"] is None else f"{r['change']:+.3f}",
             "-" if r["relative"] is None else f"{r['relative']:+.1%}"] for r in card.drift.scores]
    return Table(f"Scores: {card.drift.parent} -> {card.name}", ["suite entry", card.drift.parent, card.name,
                                                                  "change", "relative"], rows)


def _event_detail(payload: dict[str, Any]) -> str:
    keep = {k: v for k, v in payload.items() if k not in ("type", "version", "record", "checks", "champion_scores")}
    return "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in keep.items())


def _events_table(events: list[dict[str, Any]], caption: str) -> Table:
    rows = [[str(e["seq"]), when(e["time"]), e["type"], e["version"] or "-", _event_detail(e["payload"])]
            for e in events]
    return Table(caption, ["seq", "time", "type", "version", "details"], rows)


def held_back(payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The list of held-back lines in a guard event: a non-empty list field, one named like a quarantine first;
    plain values become ``{"line": value}`` rows."""
    lists = [(k, v) for k, v in payload.items() if isinstance(v, list) and v]
    lists.sort(key=lambda kv: "quarantin" not in kv[0])
    if not lists:
        return None
    key, items = lists[0]
    return key, [item if isinstance(item, dict) else {"line": item} for item in items]


def _quarantine_tables(events: list[dict[str, Any]]) -> list[Table]:
    """One table per guard event: its held-back lines when it lists them, else its fields."""
    tables = []
    for e in events:
        payload = {k: v for k, v in e["payload"].items() if k not in ("type", "version")}
        version = f", {e['version']}" if e["version"] else ""
        caption = f"{e['type']} at {when(e['time'])} (audit entry {e['seq']}{version})"
        found = held_back(payload)
        if found:
            key, items = found
            columns = list(dict.fromkeys(k for item in items for k in item))
            rows = [[_cell(item.get(c)) for c in columns] for item in items]
            others = "; ".join(f"{k}: {_cell(v)}" for k, v in payload.items() if k != key)
            tables.append(Table(caption + (f": {others}" if others else ""), columns, rows))
        else:
            tables.append(Table(caption, ["field", "value"], [[k, _cell(v)] for k, v in payload.items()]))
    return tables


def _cell(value: Any) -> str:
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value)


def _heat_pages(report: Any) -> list[dict[str, Any]]:
    from retain.report.charts_home import FAILED, heatmap_figure, score_matrix
    from retain.report.svg import figure_svg

    pages = []
    chunks = [report.versions[i:i + HEATMAP_PAGE] for i in range(0, len(report.versions), HEATMAP_PAGE)]
    for k, chunk in enumerate(chunks):
        data = score_matrix(report, chunk)
        rows = [[v.name, v.status] + ["\u2013" if value != value else f"{value:.3f}" + (
            f" {FAILED}" if name in v.failed else "") for (_, name), value in zip(report.suite, data[i])]
            for i, v in enumerate(chunk)]
        table = Table(f"Scores of {chunk[0].name} to {chunk[-1].name} ({FAILED}: failed a gate check)",
                      ["version", "status"] + [f"{name} ({kind})" for kind, name in report.suite], rows)
        label = f"Heatmap of the scores of versions {chunk[0].name} to {chunk[-1].name} on every suite entry"
        svg = figure_svg(heatmap_figure(report, chunk), label, f"heat{k}")
        pages.append({"title": f"{chunk[0].name} to {chunk[-1].name} ({len(chunk)} versions)",
                      "open": k == len(chunks) - 1,
                      "chart": Chart(svg, "Score of each version (rows) on each suite entry (columns); the gate's "
                                          "floor is marked on the colour scale.", [table])})
    return pages


def _lineage(report: Any) -> Chart:
    from retain.report.charts_home import lineage_figure
    from retain.report.svg import figure_svg

    rows = []
    for v in report.versions:
        moves = [f"{e['type']} ({e['payload'].get('reason', '')})" for e in v.events
                 if e["type"] in ("promoted", "rolled_back")]
        rows.append([v.name, v.parent or "-", v.status, v.record["skill"] or "-", v.record["method"],
                     ", ".join(g["decision"] for g in v.gates) or "-", "; ".join(moves) or "-"])
    table = Table("Versions, oldest first", ["version", "parent", "status", "skill", "method", "gate",
                                             "became champion"], rows)
    svg = figure_svg(lineage_figure(report), f"Lineage graph of the {len(report.versions)} versions of the home",
                     "lineage")
    return Chart(svg, f"Champion: {report.champion}.", [table])


def render_home(report: Any) -> str:
    """A :class:`~retain.report.home_report.HomeReport` as HTML."""
    statuses = sorted(Counter(v.status for v in report.versions).items())
    lines = sum(len(found[1]) if (found := held_back(e["payload"])) else 1 for e in report.quarantine)
    quarantined = (f"{lines} line(s) in {len(report.quarantine)} guard event(s): see the quarantine section"
                   if report.quarantine else "none recorded")
    counts = Table("What was checked", ["item", "count"], [[k, str(v)] for k, v in report.verification.counts.items()])
    toc = [("summary", "Summary"), ("lineage", "Lineage"), ("scores", "Scores"), ("versions", "Versions"),
           ("verification", "Verification"), ("quarantine", "Quarantine"), ("audit", "Audit log")]
    open_cards = {v.name for v in report.versions} if len(report.versions) <= OPEN_CARDS else {report.champion}
    return _render("home", f"retain report: {Path(report.root).name}",
                   f"The story of the model in the home {report.root}: every version, what it learned, what the "
                   "gate decided and whether the record is intact.", report.made_at, toc,
                   r=report, statuses=statuses, quarantined=quarantined, counts=counts,
                   lineage=_lineage(report), heat_pages=_heat_pages(report), open_cards=open_cards,
                   quarantine_tables=_quarantine_tables(report.quarantine), data_table=_data_table,
                   checks_table=_checks_table, gate_rule=_gate_rule, drift_text=_drift_text, drift_table=_drift_table,
                   events_table=_events_table)


def write_home_report(home: str | Path, out: str | Path, measure_drift: bool = False) -> Path:
    """``retain report HOME --out FILE``: read the home (nothing in it changes) and write its report to ``out``.

    ``out`` may not lie inside the home, whose folder holds only what the ledger writes.
    """
    from retain.report.home_report import build_home_report, check_home

    check_home(Path(home))
    root, target = Path(home).resolve(), Path(out).resolve()
    if target == root or root in target.parents:
        raise RetainError("the report may not be written inside the home (a report never changes a home)",
                          file=str(out))
    if not target.parent.is_dir():
        raise RetainError("the folder to write the report into does not exist", file=str(target.parent))
    return write_html(render_home(build_home_report(home, measure_drift)), Path(out))
