"""``report.html`` beside the results of ``retain demo`` and ``retain bench consolidation``.

The page shows what the JSON holds, for a reader who will not open the JSON: the summary table (mean and spread
over seeds), the accuracy matrices, the prior-skill curves and the settings that produced them. It reads only
the results document it is given, so a report can be remade from a saved ``results.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from retain.report.html import human_bytes, render_page, write_html
from retain.report.page import Chart, Page, Section, Table
from retain.report.svg import figure_svg

REPORT = "report.html"
# metric -> (column title, what it means); the order is the table's
METRICS = {
    "new_skill_accuracy": ("new skill", "mean accuracy on each new skill right after learning it"),
    "prior_accuracy_before": ("prior before", "mean prior-skill accuracy before any training"),
    "prior_accuracy_after": ("prior after", "mean prior-skill accuracy after the whole stream"),
    "prior_retention": ("prior kept", "prior-skill accuracy at the end relative to before training"),
    "acc": ("ACC", "mean accuracy on every stream task at the end"),
    "bwt": ("BWT", "backward transfer: mean change on earlier tasks since they were learned (negative: forgot)"),
    "fwt": ("FWT", "forward transfer: accuracy on a task before learning it, above the untrained start"),
    "forgetting": ("forgetting", "mean drop from each earlier task's best accuracy"),
    "retention": ("retention", "earlier tasks' final accuracy relative to right after learning them"),
    "drift_kl": ("KL drift", "mean KL divergence from the base model on the probes (nats)"),
    "time_ratio": ("time vs sft", "training time relative to plain fine-tuning on the same seed"),
    "train_seconds": ("train time", "seconds spent training over the whole stream"),
    "memory_bytes": ("extra memory", "bytes the method keeps beyond the model"),
}
PERCENT = {"new_skill_accuracy", "prior_accuracy_before", "prior_accuracy_after", "prior_retention", "acc",
           "forgetting", "retention"}


def _finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def spread(key: str, mean: float | None, std: float | None, n: int) -> str:
    """``mean ± std`` in the metric's unit; ``-`` for an undefined metric (e.g. BWT with one task)."""
    if mean is None or math.isnan(mean):
        return "-"
    if key == "memory_bytes":
        show = lambda v: human_bytes(int(v))  # noqa: E731
    elif key in PERCENT:
        show = "{:.1%}".format
    elif key == "time_ratio":
        show = "{:.2f}x".format
    elif key == "train_seconds":
        show = "{:.1f} s".format
    else:
        show = "{:+.3f}".format if key in ("bwt", "fwt") else "{:.3f}".format
    if n > 1 and std is not None and not math.isnan(std):
        return f"{show(mean)} \u00b1 {show(std).lstrip('+')}"
    return show(mean)


def _summary_table(caption: str, rows: dict[str, dict[str, tuple[float | None, float | None]]], n: int) -> Table:
    keys = [k for k in METRICS if any(k in r for r in rows.values())]
    keys += sorted({k for r in rows.values() for k in r} - set(keys))
    headers = ["method"] + [METRICS.get(k, (k, ""))[0] for k in keys]
    body = [[method] + [spread(k, *r.get(k, (None, None)), n) for k in keys] for method, r in rows.items()]
    return Table(caption + (f" (mean \u00b1 standard deviation over {n} seeds)" if n > 1 else " (one seed)"),
                 headers, body)


def _glossary(key: str, keys: set[str]) -> Section:
    """What each summary column means, as a collapsed part of the section."""
    rows = [[title, meaning] for name, (title, meaning) in METRICS.items() if name in keys]
    return Section(key, "What the columns mean", tables=[Table("Columns of the summary", ["column", "meaning"], rows)],
                   open=False)


def _matrix_table(caption: str, matrix: np.ndarray, columns: list[str], rows: list[str]) -> Table:
    return Table(caption, [""] + columns, [[label] + [f"{v:.1%}" for v in line] for label, line in zip(rows, matrix)])


def _settings_table(caption: str, settings: dict[str, Any]) -> Table:
    rows = [[key, value if isinstance(value, str) else json.dumps(value, sort_keys=True)]
            for key, value in settings.items()]
    return Table(caption, ["setting", "value"], rows)


# -- the demo -----------------------------------------------------------------------------------------------

def demo_page(payload: dict[str, Any]) -> Page:
    """The demo's results (``results.json``) as a page."""
    from retain.report.plots import matrices_figure, prior_figure

    runs = payload["runs"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    skills, probes = runs[0]["tasks"], runs[0]["probes"]
    by_method = {m: [r for r in runs if r["method"] == m] for m in methods}
    stats = {}
    for m, mine in by_method.items():
        keys = list(dict.fromkeys(k for r in mine for k in r["summary"]))
        stats[m] = {k: _mean_std(_finite([r["summary"].get(k) for r in mine])) for k in keys}
    steps = ["before"] + [f"after {s}" for s in skills]
    over = f"mean over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    matrices = {m: np.mean([r["matrix"] for r in mine], axis=0) for m, mine in by_method.items()}
    curves = {m: np.mean([r["probe_matrix"] for r in mine], axis=0) for m, mine in by_method.items()}
    matrix_chart = Chart(figure_svg(matrices_figure({m: v.tolist() for m, v in matrices.items()}, skills),
                                    "Accuracy matrices of the demo, one per method", "demo-matrices"),
                         f"Accuracy on each new skill (columns) before training and after each skill (rows); {over}.",
                         [_matrix_table(f"{m}: accuracy on each new skill ({over})", matrices[m], skills, steps)
                          for m in methods])
    prior_chart = Chart(figure_svg(prior_figure({m: v.tolist() for m, v in curves.items()}, skills),
                                   "Prior-skill accuracy while new skills are learned", "demo-prior"),
                        f"Thick lines: mean over the prior skills (probes); thin lines: each probe; {over}.",
                        [Table("Mean prior-skill accuracy after each step", ["step"] + methods,
                               [[step] + [f"{curves[m][i].mean():.1%}" for m in methods]
                                for i, step in enumerate(steps)])]
                        + [_matrix_table(f"{m}: accuracy on each prior skill ({over})", curves[m], probes, steps)
                           for m in methods])
    cap = payload.get("capability", {})
    prior = [[name, f"{score:.0%}"] for name, score in cap.get("probes", {}).items()]
    new = [[name, f"{v['student']:.0%}", f"{v['teacher']:.0%}"] for name, v in cap.get("new_skills", {}).items()]
    sections = [
        Section("summary", "Summary", [
            f"The embedded model learned {len(skills)} new skills one after another ({', '.join(skills)}) with "
            f"each of {', '.join(methods)} under the same budget, and was scored on those skills and on "
            f"{len(probes)} skills it had before ({', '.join(probes)}).", *_outcomes(stats)],
            tables=[_summary_table("Each method over the whole stream",
                                   {m: dict(s) for m, s in stats.items()}, len(seeds))],
            subsections=[_glossary("summary-columns", set().union(*stats.values()))]),
        Section("matrices", "Accuracy matrices", charts=[matrix_chart]),
        Section("prior", "Prior skills", charts=[prior_chart]),
        Section("before", "Before any training",
                ["What the base model could do before the stream: its prior skills (the probes), and each new "
                 "skill from the query alone (the student) and with a demonstration in the prompt (the teacher "
                 "SDFT learns from)."],
                tables=[Table("Prior skills of the base model (held-out queries)", ["probe", "accuracy"], prior),
                        Table("New skills before training (held-out queries)",
                              ["skill", "query only (student)", "with a demonstration (teacher)"], new)]),
        Section("settings", "Settings", [f"The run took {payload.get('seconds', 0):.0f} s."],
                tables=[_settings_table("Settings of this run (results.json: config)", payload["config"])]),
    ]
    return Page("retain demo: what the model kept while it learned", f"{', '.join(methods)} teach the embedded "
                "model a stream of new skills; the question is what each keeps of the skills it already had.",
                _now(), sections)


def _outcomes(stats: dict[str, dict[str, tuple[float | None, float | None]]]) -> list[str]:
    """One plain sentence per method: how well it learned the new skills and how much of the old it kept."""
    lines = []
    for method, s in stats.items():
        new, kept = s.get("new_skill_accuracy", (None, None))[0], s.get("prior_retention", (None, None))[0]
        if new is not None and kept is not None:
            lines.append(f"With {method} the model scored {new:.0%} on each new skill right after learning it and "
                         f"ended with {kept:.0%} of its prior-skill accuracy.")
    return lines


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _now() -> str:
    from retain.ledger.audit import now
    return now()


def write_demo_report(payload: dict[str, Any], out_dir: Path) -> Path:
    """Write ``report.html`` for the demo's results into ``out_dir``; return its path."""
    return write_html(render_page(demo_page(payload)), Path(out_dir) / REPORT)


# -- the consolidation benchmark -------------------------------------------------------------------------------

def _stat(value: dict[str, Any] | None) -> tuple[float | None, float | None]:
    if not value:
        return None, None
    return value.get("mean"), value.get("std")


def _scenario(domain: str, name: str, entry: dict[str, Any], n: int) -> Section:
    from retain.report.plots import prior_figure
    from retain.report.plots_consolidation import matrices_figure, mean_matrix

    methods = entry["methods"]
    rows = {label: {k: _stat(v) for k, v in m["summary"].items()} for label, m in methods.items()}
    tasks = entry["tasks"]
    steps = ["before"] + [f"after {t}" for t in tasks]
    key = f"{domain}-{name}"
    rated = any("lr" in m for m in methods.values())  # the language rows record their learning rate
    settings = Table(f"Method settings on {name}", ["method", "spec", "options"] + (["lr"] if rated else []),
                     [[label, m["spec"], json.dumps(m["options"], sort_keys=True)]
                      + ([f"{m['lr']:g}" if "lr" in m else ""] if rated else []) for label, m in methods.items()])
    section = Section(key, f"{domain} / {name}", [f"{entry['kind']}; tasks in order: {', '.join(tasks)}."
                                                   + (f" Budget: {entry['budget']}." if entry.get("budget") else "")],
                      tables=[_summary_table(f"{domain} / {name}", rows, n), settings])
    section.charts.append(Chart(
        figure_svg(matrices_figure(domain, name, entry), f"Accuracy matrices of {domain} {name}", f"m-{key}"),
        "Accuracy on each task (columns) before training and after each task (rows), mean over seeds.",
        [_matrix_table(f"{label}: accuracy matrix R (mean over seeds)", mean_matrix(m["runs"]), tasks, steps)
         for label, m in methods.items()]))
    with_probes = {label: mean_matrix(m["runs"], "probe_R") for label, m in methods.items()
                   if all("probe_R" in r for r in m["runs"])}
    if with_probes:
        probes = entry.get("probes") or next(iter(methods.values()))["runs"][0]["probes"]
        section.charts.append(Chart(
            figure_svg(prior_figure({k: v.tolist() for k, v in with_probes.items()}, tasks),
                       f"Prior-skill accuracy of {domain} {name}", f"p-{key}"),
            "Prior skills (probes) while the stream is learned: thick lines the mean, thin lines each probe.",
            [Table("Mean prior-skill accuracy after each step", ["step"] + list(with_probes),
                   [[step] + [f"{v[i].mean():.1%}" for v in with_probes.values()] for i, step in enumerate(steps)])]
            + [_matrix_table(f"{label}: prior skills (mean over seeds)", v, probes, steps)
               for label, v in with_probes.items()]))
    return section


def _retention_table(domain: str, scenarios: dict[str, Any], n: int) -> Table:
    methods = list(dict.fromkeys(label for entry in scenarios.values() for label in entry["methods"]))
    rows = [[label] + [spread("retention", *_stat(entry["methods"][label]["summary"].get("retention")), n)
                       if label in entry["methods"] else "-" for entry in scenarios.values()] for label in methods]
    return Table(f"{domain}: retention of earlier tasks", ["method"] + list(scenarios), rows)


def bench_page(results: dict[str, Any]) -> Page:
    """The consolidation benchmark's results (``consolidation.json``) as a page."""
    from retain.report.plots_consolidation import retention_figure

    n = len(results["seeds"])
    sections = []
    for domain, scenarios in results["domains"].items():
        section = Section(domain, f"{domain.capitalize()}", charts=[Chart(
            figure_svg(retention_figure(domain, scenarios), f"Retention per method on {domain}", f"r-{domain}"),
            "Mean retention of earlier tasks per method (bars: scenarios; whiskers: standard deviation over "
            "seeds; dashed line: 90%).", [_retention_table(domain, scenarios, n)])])
        section.subsections = [_scenario(domain, name, entry, n) for name, entry in scenarios.items()]
        sections.append(section)
    keys = {k for scenarios in results["domains"].values() for entry in scenarios.values()
            for m in entry["methods"].values() for k in m["summary"]}
    settings = {"split": results["split"], "quick budget": results["quick"], "seeds": results["seeds"],
                "methods": results["methods"]}
    sections.insert(0, Section("reading", "How to read this", [
        f"Every method learned each stream task by task on the {results['split']} split"
        f"{' with the quick budget' if results['quick'] else ''}, for {n} seed(s); every task was scored before "
        "training and after each task, giving the accuracy matrix R."],
        tables=[_settings_table("Settings of this run", settings)], subsections=[_glossary("reading-columns", keys)]))
    return Page("retain bench consolidation", "What each consolidation method keeps of earlier tasks while it "
                "learns new ones, side by side on the same streams and seeds.", _now(), sections)


def write_bench_report(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``report.html`` for the consolidation benchmark's results into ``out_dir``; return its path."""
    return write_html(render_page(bench_page(results)), Path(out_dir) / REPORT)

