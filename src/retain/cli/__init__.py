"""The ``retain`` command line. It parses, calls the library and prints; it holds no logic of its own.

One module per command group, registered one way. Each module in ``GROUPS`` defines ``app = typer.Typer()``:

- without a name, its commands join the top level (``retain learn``, ``retain eval``);
- with ``typer.Typer(name="bench", help=...)``, they form a group (``retain bench speed``).

To add a command group, write ``retain/cli/<group>.py`` with its ``app`` and add ``"<group>"`` to ``GROUPS``;
the order of ``GROUPS`` is the order of ``retain --help``.

``retain --help`` imports every module listed here, so a module imports at its top only typer, the standard
library and light parts of retain (``retain.errors``, ``retain.cli.usage``). Everything else (torch,
transformers, scikit-learn, gymnasium, ``retain.api``, ``retain.home``, the ledger's workflows) is imported
inside the command that needs it; ``tests/e2e/test_cli_usage.py`` checks that ``--help`` loads no torch.
A help text that needs a heavy import is filled in only when shown (see ``_MethodsHelp`` in
:mod:`retain.cli.bench`). Options share their validators (finite numbers, seeds, scorers) from
:mod:`retain.cli.usage`; a new one rejects a value with ``usage.fail(param, "must be ...")``.

Errors: a user error raises :class:`retain.errors.RetainError`; a usage error (bad value, unknown option,
missing argument) comes from typer. :func:`main` prints either as one line, ``retain: error: ...``, and exits
with code 2; a command that ran but did not do what was asked (a rejected candidate) exits with code 1.
"""

from __future__ import annotations

import importlib
import sys

import typer

from retain.errors import RetainError

GROUPS = ("demo", "learn", "base", "home", "suite", "serve", "feedback", "report", "gc", "key", "guard", "bench")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One model that keeps learning new skills without forgetting the old ones.")
for _group in GROUPS:
    app.add_typer(importlib.import_module(f"{__name__}.{_group}").app)


def main(args: list[str] | None = None) -> None:
    """Entry point: user and usage errors become one line on stderr and exit code 2."""
    from retain.cli.usage import describe, is_click_error

    try:
        code = app(args, standalone_mode=False)
    except RetainError as err:
        print(f"retain: error: {err}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("retain: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("retain: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:
        if not is_click_error(err):
            raise
        if type(err).__name__ == "NoArgsIsHelpError":
            # `retain` or `retain bench` alone: the help is the answer. Typer's rich help prints itself
            # to stdout and returns ""; click's plain help is returned as text.
            print(err.ctx.get_help() or "", end="")
        else:
            print(f"retain: error: {describe(err)}", file=sys.stderr)
        sys.exit(2)
    # Outside standalone mode click returns the code of `typer.Exit(code)` instead of exiting with it.
    if isinstance(code, int) and code != 0:
        sys.exit(code)
