"""``retain feedback list|add|export HOME``: what users said about the champion's answers.

Feedback comes from ``POST /v1/feedback`` of ``retain serve`` or from ``add`` here; each is one signed audit
event in the home, with its conversation stored content-addressed. Nothing trains by itself: ``retain learn
HOME --from-feedback`` learns the corrections. The work is in :mod:`retain.home.feedback`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from retain.cli import usage

app = typer.Typer(name="feedback", no_args_is_help=True,
                  help="Feedback on a served home's answers: list, add, export.")
HomeArg = Annotated[Path, typer.Argument(help="The home folder (made by retain init).")]


def _short(text: str | None, width: int = 40) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[:width - 3] + "..."


@app.command("list")
def list_(home: HomeArg, as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Every feedback: id, the version that answered, rating, correction, who, and whether a learn used it."""
    from rich.console import Console
    from rich.table import Table

    from retain.home.feedback import list_feedback

    items = list_feedback(home)
    if as_json:
        print(json.dumps({"home": str(home), "feedback": items}))
        return
    table = Table(title=f"feedback in {home}")
    for column in ("id", "answered by", "rating", "prompt", "answer", "correction", "user", "status"):
        table.add_column(column, overflow="fold")  # an id is copied whole, never cut to an ellipsis
    for f in items:
        messages = f["conversation"].get("messages") or [{"content": f["conversation"].get("prompt", "")}]
        status = f["status"] + (f" by {f['by']}" if f["by"] else "") + \
            (f" (rejected in {', '.join(f['tried'])})" if f["tried"] else "")
        table.add_row(f["id"], f["served_by"], str(f["rating"]), _short(messages[-1]["content"]),
                      _short(f["conversation"].get("answer")), _short(f["correction"]), f["user"] or "-", status)
    Console().print(table)


@app.command()
def add(home: HomeArg,
        response: Annotated[Optional[str], typer.Option("--response", help="A served response's id.")] = None,
        prompt: Annotated[Optional[str], typer.Option("--prompt", help="The question (instead of --response).")] = None,
        answer: Annotated[Optional[str], typer.Option("--answer", help="The answer it got (with --prompt).")] = None,
        rating: Annotated[int, typer.Option("--rating", help="-1 (bad), 0 or 1 (good).")] = -1,
        correction: Annotated[Optional[str], typer.Option("--correction", help="The answer you wanted.")] = None,
        user: Annotated[Optional[str], typer.Option("--user", help="Who gives it (recorded).")] = None,
        wait: Annotated[float, typer.Option("--wait", callback=usage.number(minimum=0),
                                            help="Seconds to wait for another writer's lock.")] = 0.0) -> None:
    """Record feedback on a served response, or on a prompt and answer given here."""
    from retain.home.feedback import add_feedback

    fid = add_feedback(home, response_id=response, prompt=prompt, answer=answer, rating=rating,
                       correction=correction, user=user, lock_timeout=wait)
    print(f"recorded {fid}")


@app.command()
def export(home: HomeArg, out: Annotated[Path, typer.Argument(help="The JSONL file to write.")]) -> None:
    """Write every recorded feedback, with its conversation and status, as JSONL."""
    from retain.home.feedback import export_feedback

    print(f"wrote {export_feedback(home, out)} feedback to {out}")
