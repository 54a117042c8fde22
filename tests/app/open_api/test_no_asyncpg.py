"""The service reaches the database only through luser_db: no module under app/ imports
the driver, so every database error reaches it as a luser_common AppError."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[3] / "app"


def driver_imports(source: str) -> list[int]:
    """Line numbers of ``import asyncpg...`` / ``from asyncpg... import ...`` in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "asyncpg" or name.startswith("asyncpg.") for name in names):
            lines.append(node.lineno)
    return lines


def test_the_check_sees_every_spelling() -> None:
    source = (
        "import os, asyncpg\nfrom asyncpg.pool import Pool\nif x:\n    import asyncpg.exceptions\n"
    )
    assert driver_imports(source) == [1, 2, 4]
    assert driver_imports("import asyncpgx\nfrom .asyncpg import y\n# import asyncpg\n") == []


def test_no_module_under_app_imports_asyncpg() -> None:
    modules = sorted(APP.rglob("*.py"))
    assert len(modules) > 50  # the walk really covers the service
    offenders = [
        f"{path.relative_to(APP.parent)}:{line}"
        for path in modules
        for line in driver_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
