"""``retain key init``, ``retain key sign HOME``, ``retain key public`` and ``retain key trust PUBLIC_KEY``: the
signing key kept outside every home, and the public keys a reading machine checks homes with
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
    if key is not None:
        print(f"public key {key.public.text} (retain key trust it on the machines that read your homes)")


@app.command("sign")
def key_sign(home: Annotated[Path, typer.Argument(help="A home made before the key existed.")]) -> None:
    """Start signing a home's audit log from now on (one signed entry)."""
    from retain.ledger.anchors import sign_home

    seq, wrote = sign_home(home)
    if not wrote:
        print(f"{home}: already signed (every entry from {seq} on); nothing written")
    else:
        print(f"{home}: signed from entry {seq} on" + (f" (entries 1-{seq - 1} predate the key)" if seq > 1 else ""))


@app.command("public")
def key_public() -> None:
    """Print the Ed25519 public key of this machine's signing key (derived from it): what a machine without the
    key checks your homes' signatures with (retain key trust PUBLIC_KEY there)."""
    from retain.errors import RetainError
    from retain.ledger import keys

    key = keys.load()
    if key is None:
        raise RetainError(f"no signing key here; create one with: retain key init (or set {keys.ENV})")
    print(key.public.text)


@app.command("trust")
def key_trust(public_key: Annotated[str, typer.Argument(
                  metavar="PUBLIC_KEY", help="ed25519: and 64 hex digits, as retain key public prints it on the "
                                             "machine that holds the signing key.")],
              remove: Annotated[bool, typer.Option("--remove", help="Stop trusting the key.")] = False) -> None:
    """Pin a public key on this machine ($XDG_CONFIG_HOME/retain/trusted_keys): every home read here without the
    signing key must then carry Ed25519 signatures by a trusted key (or one pinned for it on first use)."""
    from retain.ledger import keys

    public = keys.parse_public(public_key, field="PUBLIC_KEY")
    changed = keys.trust(public, remove=remove)
    where = keys.trusted_path()
    if remove:
        print(f"no longer trusted: {public.text} ({where})" if changed else f"{public.text} was not trusted here")
    else:
        print(f"trusted: {public.text} ({where})" if changed else f"{public.text} is already trusted here ({where})")
