"""``retain report HOME``: a home's whole story as one HTML file; the work is in :mod:`retain.report.html`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def report(home: Annotated[Path, typer.Argument(help="The home folder (made by retain init).")],
           out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write (its folder must exist; "
                                                                 "not inside the home).")] = Path("report.html"),
           drift: Annotated[bool, typer.Option("--drift", help="Also measure each version's parameter distance "
                                                               "and output drift from its parent (runs the "
                                                               "models; slower).")] = False) -> None:
    """Write a static HTML report of a home: lineage, scores, gate decisions, verification, quarantine.

    Read-only: nothing in the home changes and its lock is not taken. The file opens from disk, offline.
    """
    from retain.report.html import write_home_report

    path = write_home_report(home, out, measure_drift=drift)
    print(f"wrote {path} (open it in a browser: {path.resolve().as_uri()})")
