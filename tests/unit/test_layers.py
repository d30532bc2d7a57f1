"""The layer order, written once (ARCHITECTURE.md draws the same one): every import in ``src/retain``, function-
level ones included, goes down the stack, never up it or sideways.

Rows run top to bottom. A row holds units side by side; ``a > b > c`` is one column, ``a`` on top. A module may
import from its own unit, from a unit below it in its column, and from any unit of a lower row. Units side by
side are unrelated: neither imports the other (the ledger stores and checks, beside the training stack, which
never touches storage). A unit is a top-level package or module of ``retain``; ``retain`` is the package's own
``__init__`` (the version; its API is imported lazily).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import retain

LAYERS = [
    ["__main__"],
    ["cli"],
    ["bench", "demo", "serve"],
    ["report"],
    ["home"],
    ["guard"],
    ["api > domains > run > scenario > recipe > train > methods > evaluate > models", "ledger"],
    ["data", "safetensors_file"],
    ["errors", "seeding", "console", "retain"],
]
SRC = Path(retain.__file__).parent


def positions(layers: list[list[str]]) -> dict[str, tuple[int, int, int]]:
    """Each unit's (row, column, depth in its column)."""
    at = {}
    for row, columns in enumerate(layers):
        for column, stack in enumerate(columns):
            for depth, unit in enumerate(u.strip() for u in stack.split(">")):
                assert unit not in at, f"{unit} appears twice in LAYERS"
                at[unit] = (row, column, depth)
    return at


def allowed(at: dict[str, tuple[int, int, int]], importer: str, imported: str) -> bool:
    (r1, c1, d1), (r2, c2, d2) = at[importer], at[imported]
    return importer == imported or r2 > r1 or (r2 == r1 and c2 == c1 and d2 > d1)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """``retain.ledger.core`` -> ``ledger``; ``retain`` -> ``retain``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "retain"


def is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def targets(node: ast.AST, package: str, root: Path) -> list[str]:
    """The ``retain`` modules one import statement depends on: ``from p import x`` reads ``p``'s namespace and,
    when ``x`` is a submodule, imports ``p.x`` too."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "retain"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "retain":
        return []
    return [target] + [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}", root)]


def package_of(path: Path, root: Path) -> str:
    module = module_name(path, root)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every ``retain`` module ``path`` imports, anywhere in it (functions and ``TYPE_CHECKING`` blocks too),
    with its line."""
    package = package_of(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [(node.lineno, t) for node in ast.walk(tree) for t in targets(node, package, root)]


def load_time_imports(path: Path, root: Path) -> set[str]:
    """The ``retain`` modules importing ``path`` runs: its statements outside functions (in ``if``, ``try`` and
    class bodies too); a function's imports run when it is called, after every module is loaded."""
    package, found = package_of(path, root), set()
    todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), str(path))]
    while todo:
        node = todo.pop()
        found.update(targets(node, package, root))
        todo += [n for n in ast.iter_child_nodes(node) if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found - {module_name(path, root)}


def import_cycles(root: Path = SRC) -> list[list[str]]:
    """Groups of modules whose load-time imports run in a circle (strongly connected components, Tarjan)."""
    graph = {module_name(p, root): load_time_imports(p, root) for p in sorted(root.rglob("*.py"))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v] & graph.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def upward_imports(layers: list[list[str]], root: Path = SRC) -> list[str]:
    at = positions(layers)
    problems = []
    for path in sorted(root.rglob("*.py")):
        importer = unit_of(module_name(path, root))
        if importer not in at:
            problems.append(f"{path.relative_to(root.parent)}: unit {importer!r} is in no layer (add it to LAYERS "
                            "here and to ARCHITECTURE.md's diagram)")
            continue
        seen = set()
        for line, target in imports(path, root):
            imported = unit_of(target)
            if (line, imported) in seen:  # ``from retain.x import y``: x and x.y, one import of unit x
                continue
            seen.add((line, imported))
            if imported not in at:
                problems.append(f"{path.relative_to(root.parent)}:{line}: imports {target}, in no layer")
            elif not allowed(at, importer, imported):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {importer} imports {target} "
                                f"({imported} is not below {importer})")
    return problems


def test_every_import_goes_down_the_layers():
    assert upward_imports(LAYERS) == []


def test_no_import_cycle():
    """Importing any module never comes back to a module still loading (``retain.home`` exports its workflows
    lazily for this: ``home.workflows`` -> ``home.suite_files`` -> ``from retain.home import lmeval``)."""
    assert import_cycles() == []


def test_a_planted_import_cycle_is_caught(tmp_path):
    import shutil

    copy = tmp_path / "retain"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    init = copy / "home" / "__init__.py"
    init.write_text(init.read_text() + "\nfrom retain.home.workflows import learn_in_home\n")
    assert ["retain.home", "retain.home.suite_files", "retain.home.workflows"] in import_cycles(copy)


def test_architecture_draws_the_same_layers():
    """ARCHITECTURE.md's diagram names every unit of LAYERS (``name/`` for a package, ``name.py`` for a module),
    each in a lower line than every unit of a higher row."""
    doc = (SRC.parents[1] / "ARCHITECTURE.md").read_text(encoding="utf-8")
    diagram = doc.split("## The layers", 1)[1].split("```", 2)[1].splitlines()
    at = positions(LAYERS)
    drawn = {}
    for unit in at:
        names = {"__init__.py"} if unit == "retain" else {f"{unit}/", f"{unit}.py"}
        hits = [n for n, line in enumerate(diagram) if names & {w.strip("`,;:()") for w in line.split()}]
        assert hits, f"ARCHITECTURE.md's diagram does not name {unit}"
        drawn[unit] = hits[0]
    for a in at:
        for b in at:
            if at[a][0] < at[b][0]:
                assert drawn[a] < drawn[b], f"ARCHITECTURE.md draws {b} above {a}, which LAYERS puts higher"


@pytest.mark.parametrize("planted, importer, unit", [
    ("from retain.home.workflows import learn_in_home\n", "ledger", "home"),  # storage reaching up
    ("def f():\n    from retain.report import html\n", "models", "report"),  # a function-level import
    ("from retain.ledger import store\n", "methods", "ledger"),  # sideways: the stack never touches storage
    ("from retain import api\n", "evaluate", "api"),  # `from retain import <submodule>`
])
def test_a_planted_upward_import_is_caught(tmp_path, planted, importer, unit):
    import shutil

    copy = tmp_path / "retain"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    target = copy / importer / "planted.py"
    target.write_text(planted)
    problems = upward_imports(LAYERS, copy)
    assert len(problems) == 1 and problems[0].startswith(f"retain/{importer}/planted.py:")
    assert problems[0].endswith(f"({unit} is not below {importer})")
