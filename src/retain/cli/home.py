"""The home's commands: ``init``, ``log``, ``show``, ``diff``, ``rollback``, ``verify``, ``export``, ``reproduce``.

They parse, call :mod:`retain.home` and :mod:`retain.ledger` and print; ``learn HOME ...`` lives in
:mod:`retain.cli.learn` and calls :func:`retain.home.learn_in_home`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from retain.cli import usage
from retain.errors import RetainError
from retain.ledger.gate import GatePolicy

app = typer.Typer()


class _Console:
    """Rich output made when first used (:func:`retain.console.console`: a redirected stdout gets wide,
    unwrapped lines)."""

    def print(self, *args: Any, **kwargs: Any) -> None:
        from retain.console import console as make

        make(highlight=False).print(*args, **kwargs)


console = _Console()
HomeArg = Annotated[Path, typer.Argument(help="The home folder (made by retain init).")]
MlflowOpt = Annotated[str | None, typer.Option("--mlflow", help="Also mirror to this MLflow tracking URI "
                                                                 "(needs retain[mlflow]).")]
STATUS_STYLE = {"champion": "bold green", "rejected": "red", "rolled-back": "yellow", "superseded": "dim"}


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


@app.command(context_settings=usage.renamed(**{"protect-with": "protection",
                                                "protect-prompts": "protection-prompts"}))
def init(home: HomeArg,
         model: Annotated[str, typer.Option(help="'embedded' or a local save_pretrained folder.")] = "embedded",
         gate_alpha: Annotated[float, typer.Option(
             "--gate-alpha", help="Gate: the significance level of the paired test (one-sided exact McNemar on "
                                  "the same held-out items) that a drop of an earlier skill or probe is real.",
             callback=usage.fraction)] = GatePolicy.alpha,
         gate_min_drop: Annotated[float, typer.Option(
             "--gate-min-drop", help="Gate: the smallest drop (absolute, 0.05 = 5 points) that can block, however "
                                     "significant.", callback=usage.fraction)] = GatePolicy.min_drop,
         floor: Annotated[float, typer.Option(help="Gate: the score the new skill must reach.",
                                              callback=usage.fraction)] = GatePolicy.floor,
         suite: Annotated[Optional[list[Path]], typer.Option(
             "--suite", help="The regression suite: skill files, folders of them (settings in suite.json), a "
                             "manifest, or an lm-eval task YAML on local data files (pip install "
                             "'retain\\[lmeval]'); repeatable. Default: the embedded probes for the embedded "
                             "model.")] = None,
         no_suite: Annotated[bool, typer.Option("--no-suite", help="Accept a home whose gate measures only "
                                                                   "the skills it learns.")] = False,
         protection: Annotated[str, typer.Option(
             "--protection", help="Consolidation methods the home protects its suite with: their state is "
                                   "estimated now and every learn trains SDFT with them unless it names "
                                   "--method ('' for none: plain SDFT). (Was --protect-with.)")] = "rehearsal",
         set_: Annotated[Optional[list[str]], typer.Option(
             "--set", help="Option of a --protection method over the home's defaults (rehearsal: "
                           "target=ce, refresh=false, ratio=8, size=1024, draw=2), e.g. rehearsal.size=2048 (the "
                           "buffer the suite's prompts are kept in: a later learn cannot grow what init sampled "
                           "down); every learn of the home keeps it unless it sets its own.")] = None,
         protection_prompts: Annotated[int, typer.Option(
             "--protection-prompts", min=1, help="Training prompts of each suite item that protection draws on "
                                                 "(a seeded sample; for every learn of the home). (Was "
                                                 "--protect-prompts.)")] = 128,
         mlflow: MlflowOpt = None) -> None:
    """Create a home whose v1 (the champion) is the base model; pin its regression suite (yours, or the embedded
    probes) and estimate the protection state on the suite's training splits."""
    from retain.home import init_home_from_model
    from retain.methods.registry import CONSOLIDATIONS

    methods = tuple(m.strip().lower() for m in protection.split("+") if m.strip())
    for method in methods:
        if method not in CONSOLIDATIONS:
            raise RetainError(f"unknown consolidation method {method!r} (known: {', '.join(CONSOLIDATIONS)})",
                              field="--protection")
    if not 0 < gate_alpha < 1:
        raise RetainError(f"must be between 0 and 1 (exclusive), got {gate_alpha:g}", field="--gate-alpha")
    policy = GatePolicy(alpha=gate_alpha, min_drop=gate_min_drop, floor=floor)
    opened = init_home_from_model(home, model, policy, mlflow, suite=suite,
                                  no_suite=no_suite, protect=methods, quiet=False, per_item=protection_prompts,
                                  options=usage.parse_sets(set_ or []))
    row = opened.version("v1")
    probes = row['record']['scores']['probes']
    console.print(f"created home {home} with v1 (champion) from {model}: {row['record']['artifacts']['tensors']} "
                  f"tensors, suite of {len(probes)} items"
                  + (f", {_num(_mean(probes))} on average" if probes else " (ungated but for new skills)"))


def _tree_order(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Rows depth-first from the base model, each with its tree prefix (children in creation order)."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        children.setdefault(row["parent"], []).append(row)
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(row: dict[str, Any], lead: str, branch: str) -> None:
        out.append((lead + branch, row))
        kids = children.get(row["name"], [])
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            walk(kid, lead + {"": "", "└─ ": "   ", "├─ ": "│  "}[branch], "└─ " if last else "├─ ")

    for root in children.get(None, []):
        walk(root, "", "")
    return out


@app.command()
def log(home: HomeArg) -> None:
    """The lineage tree: version, status, method, data, and the scores that matter."""
    from rich import box
    from rich.table import Table

    from retain.ledger.core import Home

    opened = Home.open(home)
    table = Table(title=f"{home}: champion {opened.champion()}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("version", "status", "method", "skill", "data (sha256)", "new skill", "skills (mean)",
                   "probes (mean)", "created"):
        table.add_column(column, justify="right" if "(" in column or column == "new skill" else "left")
    for prefix, row in _tree_order(opened.versions()):
        record = row["record"]
        source = [d for d in record["data"] if d["role"] == "source"]
        data = ", ".join(f"{d['name']} ({d['sha256'][:10]})" for d in source) or "-"
        skills = record["scores"]["skills"]
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(prefix + row["name"], f"[{style}]{row['status']}[/]" if style else row["status"],
                      record["method"] + (" +lora" if record["lora"] else ""), record["skill"] or "-", data,
                      _num(skills.get(record["skill"])), _num(_mean(skills)),
                      _num(_mean(record["scores"]["probes"])), record["created_at"][:19].replace("T", " "))
    console.print(table)


@app.command()
def show(home: HomeArg, version: Annotated[str, typer.Argument(help="v2, 2 or champion.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print the full record as JSON.")] = False) -> None:
    """Everything recorded about one version."""
    from rich import box
    from rich.table import Table

    from retain.ledger import store
    from retain.ledger.core import Home
    from retain.ledger.hashing import canonical_json

    opened = Home.open(home)
    row = opened.version(version)
    record, name = row["record"], row["name"]
    gates, events = store.gates_of(opened.conn, name), store.events_of(opened.conn, name)
    if as_json:
        print(json.dumps({"status": row["status"], "record": record, "gates": gates, "events": events}, indent=2))
        return
    art, env = record["artifacts"], record["environment"]
    console.print(f"[bold]{name}[/]  status {row['status']}  parent {record['parent'] or '-'}  "
                  f"method {record['method']}{' (LoRA)' if record['lora'] else ''}  seed {record['seed']}  "
                  f"skill {record['skill'] or '-'}")
    console.print(f"created {record['created_at']}  wall time {record['wall_seconds']:.1f} s")
    console.print(f"weights sha256 {art['weights_sha256']}  ({row['kind']}, "
                  f"{art['tensors']} tensors, {art['bytes']} bytes, {art['bytes_new']} new bytes stored)")
    console.print("environment " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
                  + f", python {env['python']}, {env['torch_threads']} torch threads"
                  + (f", git {env['git']['commit'][:12]}{' dirty' if env['git']['dirty'] else ''}" if env["git"] else ""))
    for d in record["data"]:
        console.print(f"data {d['role']:8} {d['name']}  {d['bytes']} bytes  sha256 {d['sha256']}"
                      + (f"  from {d['path']}" if d["path"] else ""))
    rate = record["config"].get("rate") if record["config"] else None
    if rate:
        from retain.home.rate import pilots_text

        search = rate.get("search") or {}
        pilots = pilots_text(search)
        console.print(f"rate {rate['lr']:g} ({rate['source']}" + (f"; pilots {pilots}" if pilots else "")
                      + (f"; {search['skipped']}" if "skipped" in search else "") + ")", highlight=False)
    if record["config"]:
        console.print("config " + canonical_json(record["config"]).decode())
    scores = Table(title="scores", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("kind", "name", "score"):
        scores.add_column(column)
    for kind, suite in (("probe", "probes"), ("skill", "skills")):
        for skill, value in sorted(record["scores"][suite].items()):
            scores.add_row(kind, skill, _num(value))
    console.print(scores)
    for g in gates:
        console.print(f"gate vs {g['champion']}: [bold]{g['decision']}[/]"
                      + (f" (forced: {g['forced_reason']})" if g["forced_reason"] else ""))
        for reason in g["reasons"]:
            console.print(f"  - {reason}")
    for e in events:
        console.print(f"event {e['seq']} {e['time']} {e['type']}"
                      + (f" ({e['payload']['reason']})" if e["payload"].get("reason") else ""))


@app.command()
def diff(home: HomeArg, a: Annotated[str, typer.Argument(help="The first version.")],
         b: Annotated[str, typer.Argument(help="The second version.")],
         drift: Annotated[bool, typer.Option(help="Measure output drift (runs both models).")] = True) -> None:
    """Per-skill and probe score changes, parameter distance and output drift between two versions."""
    from rich import box
    from rich.table import Table

    from retain.home.versions import diff as diff_versions
    from retain.ledger.core import Home

    opened = Home.open(home)
    with tempfile.TemporaryDirectory(prefix="retain-diff-") as work:
        result = diff_versions(opened, a, b, Path(work), drift=drift)
    table = Table(title=f"scores: {result['a']} -> {result['b']}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("kind", "name", result["a"], result["b"], "change", "relative"):
        table.add_column(column, justify="left" if column in ("kind", "name") else "right")
    for r in result["scores"]:
        rel = "-" if r["relative"] is None else f"{r['relative']:+.1%}"
        table.add_row(r["kind"], r["name"], _num(r["a"]), _num(r["b"]),
                      "-" if r["change"] is None else f"{r['change']:+.3f}", rel)
    console.print(table)
    p = result["parameters"]
    console.print(f"parameter distance: L2 {p['l2']:.6g} ({p['relative']:.3%} of {result['a']}'s norm); "
                  f"{p['changed']} of {p['tensors']} tensors changed")
    for t in p["top"]:
        console.print(f"  {t['tensor']}: L2 {t['l2']:.6g} ({t['relative']:.3%})" + (f" {t['note']}" if "note" in t else ""))
    d = result["drift"]
    if d and d["prompts"]:
        console.print(f"output drift over {d['prompts']} suite prompts: mean KL {d['mean_kl']:.6g}, "
                      f"max KL {d['max_kl']:.6g} (prompt {d['max_prompt']!r})")


@app.command()
def rollback(home: HomeArg, version: Annotated[str, typer.Argument(help="An earlier champion.")],
             reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
             mlflow: MlflowOpt = None) -> None:
    """Make an earlier champion the champion again; recorded like any other change."""
    from retain.ledger import mlflow_sync
    from retain.ledger.core import Home
    from retain.ledger.operations import rollback as do_rollback
    from retain.models.merge import merge_adapter

    if mlflow:
        mlflow_sync.require()
    opened = Home.open(home)
    target, previous = do_rollback(opened, version, reason)
    console.print(f"champion: {previous} -> {target}")
    if mlflow:
        with opened.writing("mlflow"):
            mlflow_sync.sync(opened, mlflow, target, champion=True, merge=merge_adapter)


@app.command()
def verify(home: HomeArg,
           anchor: Annotated[Path | None, typer.Option("--anchor", help="Check against a chain head exported "
                                                                      "earlier with --export-anchor.")] = None,
           export_anchor: Annotated[Path | None, typer.Option("--export-anchor", help="After verifying, write the "
                                                              "chain head to this file (keep it outside the home).")] = None,
           repair: Annotated[bool, typer.Option("--repair", help="Cut the audit log back to its last trusted entry "
                                                                 "(the cut lines are kept beside it), rebuild the "
                                                                 "database from it and record the repair as an "
                                                                 "entry.")] = False,
           no_key: Annotated[bool, typer.Option("--no-key", help="Check a signed home without its key: accept "
                                                                 "the MACs unchecked (the Ed25519 signatures are "
                                                                 "checked wherever a public key is held here); "
                                                                 "without this flag, MACs no key here can check "
                                                                 "fail.")] = False,
           public_key: Annotated[str | None, typer.Option(
               "--public-key", help="Without the signing key: check the Ed25519 signatures with this public key "
                                    "(ed25519:HEX, as retain key public prints; default: $RETAIN_PUBLIC_KEY, a key "
                                    "pinned with retain key trust, or the one pinned when this machine first read "
                                    "the home).")] = None) -> None:
    """Recompute every hash (signatures, home id, witness, audit chain, database, objects); exit 1 on any
    mismatch. Every other command runs the same checks (all but rehashing every object) and refuses a home
    that fails them."""
    from retain.ledger import keys
    from retain.ledger.verify import export_anchor as write_anchor
    from retain.ledger.verify import verify as run_verify

    public = keys.explicit(public_key, field="--public-key")
    report = run_verify(home, anchor=anchor, repair=repair, no_key=no_key, public=public)
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    for note in report.notes:
        console.print(f"note: {note}")
    if report.ok:
        console.print(f"[green]ok[/]: {counts}")
        if export_anchor:
            record = write_anchor(home, export_anchor, no_key=no_key, public=public)
            console.print(f"anchor: entry {record['seq']} ({record['sha256'][:16]}) written to {export_anchor}")
        return
    for problem in report.problems:
        console.print(f"[red]MISMATCH[/] {problem}", soft_wrap=True)
    console.print(f"[red]{len(report.problems)} problem(s)[/]; checked {counts}")
    raise typer.Exit(1)


@app.command()
def export(home: HomeArg, version: Annotated[str, typer.Argument(help="The version to export.")],
           out: Annotated[Path, typer.Argument(help="A new or empty folder.")]) -> None:
    """Write a version as a save_pretrained folder with a model card (lineage, data, gate results)."""
    from retain.ledger.card import export as export_version
    from retain.ledger.core import Home
    from retain.models.merge import merge_adapter

    result = export_version(Home.open(home), version, out, merge=merge_adapter)
    console.print(f"exported {result['version']} to {result['out']} (weights sha256 {result['weights_sha256']})")


@app.command()
def reproduce(home: HomeArg, version: Annotated[str, typer.Argument(help="A learned version.")]) -> None:
    """Re-run the recorded recipe and report whether the weights hash matches; exit 1 if it does not."""
    from retain.home import reproduce as run_reproduce

    result = run_reproduce(home, version)
    verdict = "[green]identical weights[/]" if result["match"] else "[red]DIFFERENT weights[/]"
    console.print(f"{result['version']}: {verdict}\n  recorded   {result['expected']}\n  reproduced {result['got']}")
    if not result["match"]:
        raise typer.Exit(1)
