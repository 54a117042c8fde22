"""``luser db sql check``: PREPARE every rendering of every SQL template against a database.

A renamed column or a typo then fails CI instead of the first request that takes that
path. Nothing is executed: PREPARE only parses, resolves names and infers parameter
types. A statement with Jinja fragments is checked once per distinct rendering: its
variables take every falsy/truthy combination (``None`` / ``True``; at most 2**8
combinations, else all-off, all-on and each one alone). A variable whose value
matters (an identifier written with ``{{ sort }}``, a list walked by ``{% for %}``)
takes a sample from a docstring line of the template::

    -- name: search
    -- check: sort=created_at
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from luser_common import AppError

from .templates import SqlFiles, SqlTemplate, compile_sql

__all__ = ["CheckReport", "check_templates", "renderings"]

_SAMPLES = re.compile(r"^\s*check\s*:\s*(.+)$", re.MULTILINE)
_MAX_FREE = 8


@dataclass
class CheckReport:
    """What ``check_templates`` found: one line per problem, each naming file and line."""

    templates: int
    renderings: int
    problems: list[str]


def samples(template: SqlTemplate) -> dict[str, str]:
    """``-- check: a=x, b=y`` docstring lines of ``template`` as ``{"a": "x", "b": "y"}``."""
    found: dict[str, str] = {}
    for match in _SAMPLES.finditer(template.doc):
        for pair in match.group(1).split(","):
            key, sep, value = pair.partition("=")
            if sep:
                found[key.strip()] = value.strip()
    return found


def _combinations(free: Sequence[str]) -> Iterator[dict[str, Any]]:
    if len(free) <= _MAX_FREE:
        for values in itertools.product((None, True), repeat=len(free)):
            yield dict(zip(free, values, strict=True))
        return
    yield dict.fromkeys(free)
    yield dict.fromkeys(free, True)
    for name in free:
        yield {**dict.fromkeys(free), name: True}


def renderings(template: SqlTemplate) -> tuple[list[str], list[str]]:
    """The distinct ``$n`` SQL texts ``template`` can produce, and problems rendering it."""
    if template.compiled is not None:
        return [template.compiled.sql], []
    fixed = samples(template)
    free = sorted(template.jinja_variables - fixed.keys())
    texts: dict[str, None] = {}
    for combo in _combinations(free):
        try:
            text = template.jinja.render({**combo, **fixed})
        except Exception as exc:  # an identifier or a list the template needs a sample of
            reason = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            return list(texts), [
                f"{template.location}: {template.name}: 无法渲染 ({reason});"
                " 请用文档注释给出示例值, 例如 -- check: sort=id"
            ]
        texts[compile_sql(text).sql] = None
    return list(texts), []


async def check_templates(files: SqlFiles, conn: Any) -> CheckReport:
    """PREPARE every rendering on ``conn`` (an asyncpg connection); nothing is executed."""
    problems = list(files.problems)
    count = 0
    templates = sorted(files.templates.values(), key=lambda t: (str(t.path), t.line))
    for template in templates:
        texts, render_problems = renderings(template)
        problems.extend(render_problems)
        for sql in texts:
            count += 1
            problem = await _prepare(conn, template, sql)
            if problem is not None and problem not in problems:
                problems.append(problem)
    return CheckReport(len(templates), count, problems)


async def _prepare(conn: Any, template: SqlTemplate, sql: str) -> str | None:
    import asyncpg

    try:
        await conn.prepare(sql)
    except asyncpg.PostgresError as exc:
        line = template.body_line or template.line
        position = getattr(exc, "position", None)
        if position and str(position).isdigit():
            line += sql[: int(position) - 1].count("\n")
        return f"{template.path}:{line}: {template.name}: {exc.sqlstate} {exc}"
    return None
