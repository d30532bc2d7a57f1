"""``retain serve HOME``: an OpenAI-compatible API on the home's champion (extra ``retain[serve]``).

The work is in :mod:`retain.serve`; this parses the options, refuses an open bind without a key, and runs uvicorn.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from retain.cli import usage
from retain.errors import RetainError

app = typer.Typer()
KEY_ENV = "RETAIN_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    home: Annotated[Path, typer.Argument(help="The home folder (made by retain init).")],
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", callback=usage.number(minimum=0), help="TCP port (0: any free).")] = 8000,
    api_key: Annotated[list[str], typer.Option(
        "--api-key",
        help=f"Bearer token required on every request (repeatable; NAME:SECRET records NAME with feedback). "
             f"Default: ${KEY_ENV} (comma-separated). Required when --host is not a loopback address.")] = [],
    max_tokens: Annotated[int, typer.Option(
        "--max-tokens", callback=usage.number(minimum=1), help="Most tokens one request may generate.")] = 256,
    default_tokens: Annotated[int, typer.Option(
        "--default-tokens", callback=usage.number(minimum=1),
        help="Tokens generated when a request does not say.")] = 64,
    max_body: Annotated[int, typer.Option(
        "--max-body-bytes", callback=usage.number(minimum=1), help="Largest request body.")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", callback=usage.number(minimum=1), help="Most requests generated together in one batch.")] = 16,
    poll: Annotated[float, typer.Option(
        "--poll-seconds", callback=usage.number(minimum=0, above=True),
        help="How often the home's champion is checked (a promotion or rollback is served from the next check "
             "on).")] = 1.0,
    keep_served: Annotated[float, typer.Option(
        "--keep-served-days", callback=usage.number(minimum=0, above=True),
        help="How long answers are kept for feedback to name (older ones are dropped from HOME/served.sqlite as "
             "new ones arrive; rated answers stay in the audit log).")] = 30.0,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name",
        help="The model id clients name (default: the home's folder name; `champion` is always accepted).")] = None,
) -> None:
    """Serve the home's champion with an OpenAI-compatible API; feedback on its answers goes into the home."""
    from retain.home import is_home

    if not is_home(home):
        raise RetainError("not a retain home (create one with: retain init HOME)", file=str(home))
    if port > 65535:
        raise RetainError(f"must be at most 65535, got {port}", field="--port")
    if default_tokens > max_tokens:
        raise RetainError(f"must be at most --max-tokens ({max_tokens})", field="--default-tokens")
    keys_given = list(api_key) or [k for k in os.environ.get(KEY_ENV, "").split(",") if k.strip()]
    if not keys_given and not is_loopback(host):
        raise RetainError(f"binding to {host} serves other machines: give --api-key (or set {KEY_ENV})",
                          field="--api-key")
    try:
        import uvicorn

        from retain.serve.app import Server, create_app, parse_keys
        from retain.serve.protocol import Limits
    except ImportError as err:
        raise RetainError(f"retain serve needs the serve extra: pip install 'retain[serve]' ({err.name} is "
                          "missing)", field="serve") from None
    server = Server(home, keys=parse_keys(keys_given), poll_seconds=poll, max_batch=max_batch,
                    model_name=model_name, quiet=False, keep_served_days=keep_served,
                    limits=Limits(max_body_bytes=max_body, max_tokens=max_tokens, default_max_tokens=default_tokens))
    print(f"serving {home} ({server.champion.current().version}) as model {server.model_name!r} on "
          f"http://{host}:{port}/v1" + (" (bearer token required)" if keys_given else ""), flush=True)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning")
