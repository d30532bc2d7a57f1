"""``retain suite list|add|remove HOME``: the regression suite a home's gate measures, owned by the user.

Each change is one recorded, hash-chained event in the home's audit log. The work is in
:func:`retain.home.add_to_suite`, :func:`retain.home.remove_from_suite` and :func:`retain.home.list_suite`;
the file formats in :mod:`retain.home.suite_files`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from retain.cli import usage

app = typer.Typer(name="suite", no_args_is_help=True, help="The regression suite of a home: list, add, remove.")
HomeArg = Annotated[Path, typer.Argument(help="The home folder (made by retain init).")]
WaitOpt = Annotated[float, typer.Option("--wait", callback=usage.number(minimum=0),
                                        help="Seconds to wait for another writer's lock (default: fail at once).")]


@app.command("list")
def list_(home: HomeArg, as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Every suite item: name, kind, scorer, held-out and training sizes, the version it is judged from."""
    from rich.table import Table

    from retain.console import console

    from retain.home import list_suite

    items = list_suite(home)
    if as_json:
        print(json.dumps({"home": str(home), "items": items}))
        return
    table = Table(title=f"regression suite of {home}")
    for column in ("name", "kind", "scorer", "shown with demonstration", "held out", "training", "judged from"):
        table.add_column(column)
    for item in items:
        table.add_row(item["name"], item["kind"], item["scorer"], "yes" if item["with_demonstration"] else "no",
                      str(item["n"]), str(item.get("n_train", 0)), str(item.get("added_by")))
    console().print(table)


@app.command()
def add(home: HomeArg,
        paths: Annotated[list[Path], typer.Argument(help="Skill files, folders of them (settings in suite.json), "
                                                        "a manifest (.json) or an lm-eval task YAML on local "
                                                        "data files (pip install 'retain\\[lmeval]').")],
        reason: Annotated[Optional[str], typer.Option("--reason", help="Recorded with the change.")] = None,
        wait: WaitOpt = 0.0) -> None:
    """Add items to the suite; from the next version on the gate measures them."""
    from retain.home import add_to_suite

    specs = add_to_suite(home, paths, reason or "added by retain suite add", lock_timeout=wait)
    for spec in specs:
        print(f"added {spec['name']} ({spec['n']} held out, {spec.get('n_train', 0)} training, {spec['scorer']})")


@app.command()
def remove(home: HomeArg, names: Annotated[list[str], typer.Argument(help="Suite item names.")],
           reason: Annotated[Optional[str], typer.Option("--reason", help="Recorded with the change.")] = None,
           wait: WaitOpt = 0.0) -> None:
    """Remove items from the suite (earlier versions keep their recorded scores)."""
    from retain.home import remove_from_suite

    remove_from_suite(home, names, reason or "removed by retain suite remove", lock_timeout=wait)
    print(f"removed {', '.join(names)}")
