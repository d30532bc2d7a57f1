"""One typer declaration style across ``retain/cli``: every command parameter is declared with ``Annotated``
(``name: Annotated[T, typer.Option(...)] = default``), never with the option as its default value."""

from __future__ import annotations

import ast
from pathlib import Path

import retain.cli

CLI = Path(retain.cli.__file__).parent


def default_style_parameters(source: str) -> list[str]:
    """``function.parameter`` for every parameter whose default is a ``typer.Option``/``typer.Argument`` call or
    a module-level name bound to one."""
    tree = ast.parse(source)

    def is_typer_call(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "typer" \
            and node.func.attr in ("Option", "Argument")
    bound = {t.id for node in tree.body if isinstance(node, ast.Assign) and is_typer_call(node.value)
             for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults \
                + node.args.kw_defaults
            found += [f"{node.name}.{a.arg}" for a, d in zip(args, defaults)
                      if is_typer_call(d) or (isinstance(d, ast.Name) and d.id in bound)]
    return found


def test_every_cli_parameter_is_annotated():
    offenders = {path.name: found for path in sorted(CLI.glob("*.py"))
                 if (found := default_style_parameters(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_check_sees_both_default_styles():
    plain = 'import typer\n@app.command()\ndef f(x: int = typer.Option(1, "--x")) -> None: ...\n'
    shared = 'import typer\nX = typer.Option(1, "--x")\ndef f(x: int = X) -> None: ...\n'
    good = 'import typer\nfrom typing import Annotated\ndef f(x: Annotated[int, typer.Option("--x")] = 1): ...\n'
    assert default_style_parameters(plain) == ["f.x"] and default_style_parameters(shared) == ["f.x"]
    assert default_style_parameters(good) == []
