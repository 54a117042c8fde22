"""The app's import graph: no cycles, and no package reaches into another's private modules.

Every module under ``app/`` is parsed with ``ast``; an edge runs from a module to each
app module it imports (relative imports resolved, ``from pkg import mod`` resolved to
the module, and the packages whose ``__init__`` the import runs first). Imports under
``if TYPE_CHECKING:`` are not edges: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import app

APP_DIR = Path(app.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(APP_DIR.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            yield from (n for child in node.orelse for n in _imports(ast.Module([child], [])))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The app modules ``name`` imports, as written (no parent packages added)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        found.add(base)
        found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
    return {m for m in found if m in modules and m != name}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = set(_ancestors(name))
        edges: set[str] = set()
        for target in imported(name, path, modules):
            # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the
            # importer is inside them (then they are already being imported).
            edges.update(p for p in [*_ancestors(target), target] if p in modules)
        graph[name] = edges - own - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _unit(name: str) -> str:
    """The top-level package (feature or layer) a module belongs to: app.<unit>."""
    return ".".join(name.split(".")[:2])


def private_imports(modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(importer, target) where the target is a private module of another package."""
    bad = []
    for name, path in modules.items():
        for target in imported(name, path, modules):
            private = any(p.startswith("_") for p in target.split(".")[2:])
            if private and _unit(target) != _unit(name):
                bad.append((name, target))
    return sorted(bad)


def test_the_graph_is_built_from_real_imports() -> None:
    # Guards the parser itself: a graph with no edges would have no cycles either.
    graph = import_graph(app_modules())
    assert "app.container" not in graph["app.web.operation"]  # TYPE_CHECKING only
    assert {"app.features", "app.commerce.routes"} <= graph["app.commerce.feature"]
    assert {"app.commerce", "app.commerce.feature"} <= graph["app.main"]  # runs the __init__
    assert "app.commerce.routes.plans" in graph["app.commerce.routes"]  # from pkg import mod
    assert sum(len(edges) for edges in graph.values()) > 200


def test_resolves_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "app" / "feat"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .b import x\nfrom .. import other\n")
    (pkg / "b.py").write_text("x = 1\n")
    modules = {"app.feat": pkg / "__init__.py", "app.feat.a": pkg / "a.py"}
    modules |= {"app.feat.b": pkg / "b.py", "app.other": tmp_path / "app" / "other.py"}
    assert imported("app.feat", modules["app.feat"], modules) == {"app.feat.a"}
    assert imported("app.feat.a", modules["app.feat.a"], modules) == {"app.feat.b", "app.other"}


def test_no_import_cycles() -> None:
    assert cycles(import_graph(app_modules())) == []


def test_no_package_imports_another_packages_private_module() -> None:
    assert private_imports(app_modules()) == []
