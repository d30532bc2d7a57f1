"""Usage errors on one line: ``retain: error: --lr: must be a number, got 'abc'``, exit code 2.

Typer parses with its own copy of click (``typer._click``) and raises that copy's exceptions; a command body
may still raise the real click's. Both are recognised here by class name and the attributes click documents
(``param``, ``option_name``, ``possibilities``), so the one-line rule of ``retain.errors`` holds for every
way a command line can be wrong. The option validators the commands share live here too.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable

import typer

from retain.errors import RetainError

# The largest seed every random source accepts: torch takes -2**63 .. 2**64 - 1, SQLite (the ledger) and
# the derived seeds of a run stay below 2**63; NumPy is seeded modulo 2**32.
MAX_SEED = 2**63 - 1


def _click_bases() -> tuple[type, ...]:
    """The exception bases of typer's vendored click and, when something imported it, of the real click."""
    bases: list[type] = [typer.TyperException]
    click = sys.modules.get("click")
    if click is not None:
        bases.append(click.ClickException)
    return tuple(bases)


def is_click_error(err: BaseException) -> bool:
    """True for a ``ClickException`` of either click (usage errors, bad files)."""
    return isinstance(err, _click_bases())


def _kind(err: BaseException, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(err).__mro__)


def _name(param: Any) -> str:
    """``--lr`` for an option (its longest spelling), ``DATA`` for an argument."""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
    if opts:
        return max(opts, key=len)
    return (getattr(param, "name", None) or "argument").upper()


def _sentence(text: str) -> str:
    """Click's ``Option '--x' requires an argument.`` style to ours: lower-case start, no final period."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _parse_failure(cause: BaseException) -> str | None:
    """Our wording for a value typer could not convert (typer converts through pydantic)."""
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return None
    first = errors()[0]
    kind, got, ctx = first.get("type", ""), first.get("input"), first.get("ctx") or {}
    limits = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind == "float_parsing":
        return f"must be a number, got {got!r}"
    if kind in ("int_parsing", "int_from_float"):
        return f"must be an integer, got {got!r}"
    if kind == "bool_parsing":
        return f"must be true or false, got {got!r}"
    for key, sign in limits.items():
        if kind == key:
            return f"must be {sign} {next(iter(ctx.values()), '?')}, got {got}"
    return f"{_sentence(first.get('msg', 'invalid value'))}, got {got!r}"


def describe(err: BaseException) -> str:
    """One line naming the option or argument at fault (without the ``retain: error:`` prefix)."""
    param = getattr(err, "param", None)
    if _kind(err, "MissingParameter") and param is not None:
        what = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
        return f"{_name(param)}: missing {what}"
    if _kind(err, "BadParameter"):
        where = _name(param) if param is not None else None
        message = _parse_failure(err.__cause__) if err.__cause__ is not None else None
        message = message or _sentence(getattr(err, "message", str(err)))
        return f"{where}: {message}" if where else message
    if _kind(err, "NoSuchOption"):
        possible = getattr(err, "possibilities", None)
        hint = f" (did you mean {', '.join(sorted(possible))}?)" if possible else ""
        return f"{err.option_name}: no such option{hint}"
    if _kind(err, "BadOptionUsage"):
        message = getattr(err, "message", str(err))
        return f"{err.option_name}: {_sentence(message.replace(f'Option {err.option_name!r} ', ''))}"
    if _kind(err, "UsageError"):
        return _sentence(getattr(err, "message", str(err)))
    return _sentence(err.format_message())


def fail(param: typer.CallbackParam, message: str) -> None:
    """Reject the value of ``param`` with ``message``; :func:`describe` prints it after the option's name."""
    raise typer.BadParameter(message, param=param)


def number(*, minimum: float | None = None, above: bool = False,
           maximum: float | None = None) -> Callable[..., Any]:
    """A callback that accepts finite numbers ``>= minimum`` (``> minimum`` with ``above``) and ``<= maximum``;
    None passes."""

    def check(param: typer.CallbackParam, value: float | int | None) -> float | int | None:
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            fail(param, f"must be a finite number, got {value}")
        if minimum is not None and (value <= minimum if above else value < minimum):
            fail(param, f"must be {'>' if above else '>='} {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            fail(param, f"must be <= {maximum:g}, got {value:g}")
        return value

    return check


def fraction(param: typer.CallbackParam, value: float) -> float:
    """A finite number from 0 to 1 (the gate's thresholds)."""
    number(minimum=0)(param, value)
    if value > 1:
        fail(param, f"must be between 0 and 1, got {value:g}")
    return value


def seed(param: typer.CallbackParam, value: int) -> int:
    """A seed every random source of a run accepts: 0 to ``MAX_SEED``."""
    if not 0 <= value <= MAX_SEED:
        fail(param, f"must be an integer from 0 to 2**63 - 1, got {value}")
    return value


def scorer(param: typer.CallbackParam, value: str | None) -> str | None:
    """A scorer name that resolves to a working scorer (see :func:`retain.evaluate.scorers.get_scorer`); None
    (not given) stays None."""
    from retain.evaluate.scorers import get_scorer

    if value is None:
        return None
    try:
        get_scorer(value)
    except RetainError as err:
        fail(param, err.message)
    return value


def parse_sets(pairs: list[str]) -> dict[str, dict[str, object]]:
    """``["sdft.teacher=frozen", "ewc.lam=100"]`` -> ``{"sdft": {"teacher": "frozen"}, "ewc": {"lam": "100"}}``."""
    options: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise RetainError(f"expected METHOD.KEY=VALUE, got {pair!r}", field="--set")
        options.setdefault(method.strip().lower(), {})[name.strip()] = value
    return options


def renamed(**old: str) -> dict[str, Any]:
    """``context_settings`` of a command whose options were renamed: ``renamed(protect="prior")`` keeps
    ``--protect`` working as ``--prior`` and says once on stderr that it is deprecated. Click normalises every
    option token (never a value) through this function, so only the option's spelling is touched."""
    told: set[str] = set()

    def normalize(name: str) -> str:
        new = old.get(name)
        if new is None:
            return name
        if name not in told:
            told.add(name)
            print(f"retain: warning: --{name} is deprecated; use --{new}", file=sys.stderr)
        return new

    return {"token_normalize_func": normalize}


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the option or argument ``name`` (its parameter's name) was given, rather than left at its
    default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def option_name(ctx: typer.Context, name: str) -> str:
    """``--max-prompt-tokens`` for the parameter ``max_prompt_tokens`` of ``ctx``'s command."""
    return next(_name(p) for p in ctx.command.params if p.name == name)
