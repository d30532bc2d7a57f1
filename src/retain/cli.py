"""The ``retain`` command line. It parses, calls the library and prints; it holds no logic of its own."""

from __future__ import annotations

import sys

import typer

from retain.errors import RetainError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One model that keeps learning new skills without forgetting the old ones.")
bench_app = typer.Typer(no_args_is_help=True, help="The tables we publish.")
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except RetainError as err:
        print(f"retain: error: {err}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("retain: interrupted", file=sys.stderr)
        sys.exit(130)
