"""``retain gc HOME``: remove blobs no version references (:mod:`retain.ledger.gc`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def gc(home: Annotated[Path, typer.Argument(help="The home folder.")],
       dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be removed.")] = False) -> None:
    """Remove unreferenced objects (left by a crash or a full disk before a commit)."""
    from retain.ledger.gc import collect

    done = collect(home, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    print(f"{home}: {verb} {done.objects} unreferenced objects ({done.bytes} bytes); {done.kept} referenced kept")
