"""Safety lint for migrations: statements that lock or break a live table.

Rules (codes are stable; silence one per file with ``-- lint:ignore CODE``):

* ``not-null-without-default``: ``ADD COLUMN ... NOT NULL`` with no DEFAULT on an
  existing table fails as soon as the table has a row.
* ``index-without-concurrently``: ``CREATE INDEX`` on an existing table blocks
  writes for the whole build; use CONCURRENTLY in a no-transaction migration.
* ``concurrently-in-transaction``: CONCURRENTLY cannot run inside a transaction,
  so the file needs ``-- migrate:no-transaction``.
* ``drop-column`` / ``drop-table``: data loss, and old app code still reading the
  column breaks; needs ``-- lint:allow-destructive``.
* ``alter-column-type``: rewrites the table under an ACCESS EXCLUSIVE lock.

A table created earlier in the same file is new, so none of the "existing
table" rules apply to it. Only the up part is checked: a down part is
destructive by nature.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._scan import Statement, split_statements
from .files import Migration

__all__ = ["RULES", "LintIssue", "lint_migration", "lint_migrations"]

RULES: dict[str, str] = {
    "not-null-without-default": "给已有表添加 NOT NULL 列却没有 DEFAULT, 表中已有数据时会失败",
    "index-without-concurrently": (
        "在已有表上 CREATE INDEX 未使用 CONCURRENTLY, 建索引期间会阻塞写入"
    ),
    "concurrently-in-transaction": (
        "CONCURRENTLY 不能在事务中执行, 请在文件中加 -- migrate:no-transaction"
    ),
    "drop-column": "删除列会丢失数据; 确认后请加 -- lint:allow-destructive",
    "drop-table": "删除表会丢失数据; 确认后请加 -- lint:allow-destructive",
    "alter-column-type": "原地修改列类型会重写整表并长时间锁表; 建议新增列、回填后再切换",
}

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>{_QNAME})",
    re.IGNORECASE,
)
_ALTER_TABLE = re.compile(
    rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_QNAME})\s*\*?\s+(?P<actions>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_INDEX = re.compile(
    rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:{_IDENT}\s+)?ON\s+(?:ONLY\s+)?(?P<table>{_QNAME})",
    re.IGNORECASE,
)
_REINDEX_CONCURRENTLY = re.compile(r"^(?:REINDEX|DROP\s+INDEX)\b.*\bCONCURRENTLY\b", re.IGNORECASE)
_DROP_TABLE = re.compile(
    r"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<tables>.*?)(?:\s+(?:CASCADE|RESTRICT))?$",
    re.IGNORECASE | re.DOTALL,
)
_ADD_COLUMN = re.compile(
    rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|"
    rf"CHECK\b|FOREIGN\b|EXCLUDE\b)({_IDENT})\s+(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_DROP_COLUMN = re.compile(
    rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!CONSTRAINT\b)(?P<column>{_IDENT})", re.IGNORECASE
)
_ALTER_TYPE = re.compile(
    rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\b", re.IGNORECASE
)


@dataclass(frozen=True)
class LintIssue:
    rule: str
    file: str
    line: int
    message: str
    statement: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.message}"


def lint_migrations(migrations: Iterable[Migration]) -> list[LintIssue]:
    return [issue for migration in migrations for issue in lint_migration(migration)]


def lint_migration(migration: Migration) -> list[LintIssue]:
    """The unsafe statements in ``migration``'s up part, minus the rules it silenced."""
    section = migration.up
    created: set[str] = set()
    issues: list[LintIssue] = []
    for stmt in split_statements(section.sql):
        for rule, detail in _check(stmt, created, section.transactional):
            if rule not in section.lint_ignore:
                message = f"{RULES[rule]} ({detail})" if detail else RULES[rule]
                issues.append(LintIssue(rule, section.path.name, stmt.line, message, stmt.code))
        table = _CREATE_TABLE.match(stmt.code)
        if table:
            created.add(_norm(table["table"]))
    return issues


def _check(stmt: Statement, created: set[str], transactional: bool) -> list[tuple[str, str]]:
    code = stmt.code
    found: list[tuple[str, str]] = []
    index = _CREATE_INDEX.match(code)
    if index:
        table = _norm(index["table"])
        if index["concurrently"] and transactional:
            found.append(("concurrently-in-transaction", table))
        elif not index["concurrently"] and table not in created:
            found.append(("index-without-concurrently", table))
    elif transactional and _REINDEX_CONCURRENTLY.match(code):
        found.append(("concurrently-in-transaction", ""))
    drop = _DROP_TABLE.match(code)
    if drop:
        for name in _split_top(drop["tables"]):
            if _norm(name) not in created:
                found.append(("drop-table", _norm(name)))
    alter = _ALTER_TABLE.match(code)
    if alter and _norm(alter["table"]) not in created:
        found.extend(_check_actions(_norm(alter["table"]), alter["actions"]))
    return found


def _check_actions(table: str, actions: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for action in _split_top(actions):
        add = _ADD_COLUMN.match(action)
        if add and _adds_unfilled_not_null(add["rest"]):
            found.append(("not-null-without-default", f"{table}.{_norm(add.group(1))}"))
        drop = _DROP_COLUMN.match(action)
        if drop:
            found.append(("drop-column", f"{table}.{_norm(drop['column'])}"))
        alter = _ALTER_TYPE.match(action)
        if alter:
            found.append(("alter-column-type", f"{table}.{_norm(alter['column'])}"))
    return found


def _adds_unfilled_not_null(rest: str) -> bool:
    upper = rest.upper()
    if not re.search(r"\bNOT\s+NULL\b", upper) and not re.search(r"\bPRIMARY\s+KEY\b", upper):
        return False
    # DEFAULT and GENERATED columns are filled for existing rows; serial types have a default.
    if re.search(r"\b(DEFAULT|GENERATED)\b", upper):
        return False
    return not re.match(r"^(SMALL|BIG)?SERIAL\d?\b", upper)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (literals are already blanked)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        depth += (ch == "(") - (ch == ")")
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _norm(name: str) -> str:
    """``public."Users"`` -> ``Users``, ``Users`` -> ``users``: how PostgreSQL resolves it."""
    parts = [p.strip() for p in re.findall(_IDENT, name)]
    last = parts[-1] if parts else name
    if last.startswith('"'):
        return last[1:-1].replace('""', '"')
    return last.lower()
