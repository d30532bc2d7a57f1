"""``retain key init`` and ``retain key sign HOME``: the signing key kept outside every home
(:mod:`retain.ledger.keys`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="key", no_args_is_help=True, help="The key that signs every home's audit log.")


@app.command("init")
def key_init(force: Annotated[bool, typer.Option("--force", help="Replace an existing key (homes it signed then "
                                                                 "fail verify).")] = False) -> None:
    """Create a random key in $XDG_CONFIG_HOME/retain/key (or ~/.config/retain/key), readable by you only."""
    from retain.ledger import keys

    path = keys.init(force)
    key = keys.load()
    print(f"created signing key {key.id if key else ''} at {path} (mode 0600); every write to a home now signs "
          "its audit entries; keep a copy somewhere safe")


@app.command("sign")
def key_sign(home: Annotated[Path, typer.Argument(help="A home made before the key existed.")]) -> None:
    """Start signing a home's audit log from now on (one signed entry)."""
    from retain.ledger.anchors import sign_home

    seq, wrote = sign_home(home)
    if not wrote:
        print(f"{home}: already signed (every entry from {seq} on); nothing written")
    else:
        print(f"{home}: signed from entry {seq} on" + (f" (entries 1-{seq - 1} predate the key)" if seq > 1 else ""))
