"""SQL text helpers: ``?`` → ``$n`` placeholders and identifier checking/quoting.

Placeholders are found by a small PostgreSQL lexer, so a ``?`` inside a string
literal (``'..'``, ``E'..'``, ``$tag$..$tag$``), a quoted identifier or a comment
is left alone. ``??`` writes a literal ``?`` (the jsonb operator). SQL that
already uses ``$n`` is passed through unchanged. Every identifier that comes
from a caller goes through :func:`quote_ident` / :func:`check_ident` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from luser_common import ValidationError

__all__ = [
    "Expr",
    "Template",
    "check_ident",
    "compile_template",
    "like_contains",
    "like_escape",
    "quote_ident",
    "split_statements",
    "to_dollar",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_PARAM = re.compile(r"\$([0-9]+)")


@dataclass(frozen=True, slots=True)
class Template:
    """SQL split around its placeholders: ``pieces[i]`` precedes placeholder ``slots[i]``.

    ``slots`` are 0-based argument indices; ``arity`` is how many arguments the
    text expects. Rendering with an offset renumbers the placeholders, which is
    how the query builder joins fragments that each start at ``$1``/``?``.
    """

    pieces: tuple[str, ...]
    slots: tuple[int, ...]
    arity: int

    def render(self, offset: int = 0) -> str:
        if not self.slots:
            return self.pieces[0]
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out.append(f"${slot + offset + 1}")
            out.append(piece)
        return "".join(out)


def _ident_char(ch: str) -> bool:
    # PostgreSQL identifiers may hold any letter (not just ASCII), digits, _ and $.
    return ch.isalnum() or ch in "_$"


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the literal/identifier opened at ``sql[i]``."""
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    n, depth = len(sql), 0
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


# Characters that may open a literal, a quoted identifier, a dollar quote or a comment.
OPENERS = frozenset("'\"-/$")


def skip_literal(sql: str, i: int, standard_strings: bool = True) -> int:
    """Index just past the string literal, quoted identifier, dollar-quoted body or
    comment that starts at ``sql[i]``; ``i`` itself when none starts there.

    The one lexer rule every scanner here shares (placeholders, statement splitting,
    SQL template parameters): what it skips is text, never SQL.
    """
    c = sql[i]
    if c == "'":
        escape = (not standard_strings) or (
            i > 0 and sql[i - 1] in "eE" and not (i > 1 and _ident_char(sql[i - 2]))
        )
        return _skip_quoted(sql, i, "'", escape)
    if c == '"':
        return _skip_quoted(sql, i, '"', False)
    if c == "-" and sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if c == "/" and sql.startswith("/*", i):
        return _skip_block_comment(sql, i)
    if c == "$" and not (i > 0 and _ident_char(sql[i - 1])):
        tag = _TAG.match(sql, i)  # $$ or $name$ (never $1: a tag cannot start with a digit)
        if tag:
            end = sql.find(tag.group(0), tag.end())
            return len(sql) if end < 0 else end + len(tag.group(0))
    return i


def _scan(sql: str, standard_strings: bool) -> list[tuple[int, int, int]]:
    """Placeholder-like tokens outside literals: (start, end, n) with n = k-1 for ``$k``,
    -1 for ``?`` and -2 for ``??``."""
    marks: list[tuple[int, int, int]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in OPENERS:
            skipped = skip_literal(sql, i, standard_strings)
            if skipped != i:
                i = skipped
                continue
        if c == "$" and not (i > 0 and _ident_char(sql[i - 1])):
            param = _PARAM.match(sql, i)
            if param:
                marks.append((i, param.end(), int(param.group(1)) - 1))
                i = param.end()
            else:
                i += 1
        elif c == "?":
            if sql.startswith("??", i):
                marks.append((i, i + 2, -2))
                i += 2
            else:
                marks.append((i, i + 1, -1))
                i += 1
        else:
            i += 1
    return marks


def split_statements(sql: str) -> list[str]:
    """The statements of a multi-statement string, split at ``;`` outside literals,
    quoted identifiers, dollar quotes and comments (empty statements dropped)."""
    parts: list[str] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in OPENERS:
            skipped = skip_literal(sql, i)
            if skipped != i:
                i = skipped
                continue
        if c == ";":
            parts.append(sql[start:i])
            start = i + 1
        i += 1
    parts.append(sql[start:])
    return [part for part in (p.strip() for p in parts) if part and not _only_comments(part)]


def _only_comments(text: str) -> bool:
    while text:
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :].strip()
        elif text.startswith("/*"):
            text = text[_skip_block_comment(text, 0) :].strip()
        else:
            return False
    return True


@lru_cache(maxsize=4096)
def compile_template(sql: str, standard_strings: bool = True) -> Template:
    """Parse ``sql`` once (cached): where its placeholders are and how many args it takes.

    With any ``$n`` in the text, ``?`` and ``??`` are PostgreSQL's own operators and
    stay as written; otherwise each ``?`` is a parameter and ``??`` a literal ``?``.
    """
    marks = _scan(sql, standard_strings)
    dollar = any(k >= 0 for _, _, k in marks)
    pieces: list[str] = []
    slots: list[int] = []
    buf: list[str] = []
    pos = 0
    for start, end, k in marks:
        if dollar and k < 0:
            continue
        if k == -2:
            buf.append(sql[pos:start] + "?")
        else:
            buf.append(sql[pos:start])
            pieces.append("".join(buf))
            buf = []
            slots.append(k if dollar else len(slots))
        pos = end
    buf.append(sql[pos:])
    pieces.append("".join(buf))
    return Template(tuple(pieces), tuple(slots), max(slots) + 1 if slots else 0)


@lru_cache(maxsize=4096)
def to_dollar(sql: str) -> str:
    """``sql`` with ``?`` placeholders rewritten to ``$1..$n`` (``$n`` SQL unchanged)."""
    template = compile_template(sql)
    if any(k >= 0 for _, _, k in _scan(sql, True)):
        return sql
    return template.render()


class Expr:
    """A SQL expression as a column's new value, with its own ``?`` parameters.

    ``query().update(balance=Expr("balance + ?", amount))`` runs
    ``SET balance = balance + $n`` in one statement: no read-modify-write race. Also
    accepted by ``Model.update(**changes)`` and ``Model.upsert(update={...})``
    (there ``EXCLUDED.col`` is the row that was proposed). The text is trusted SQL
    written by the developer; only the parameters carry outside values.
    """

    __slots__ = ("params", "sql", "template")

    def __init__(self, sql: str, *params: Any) -> None:
        if not isinstance(sql, str) or not sql.strip():
            raise ValidationError("Expr 需要非空的 SQL 表达式", field="expr")
        template = compile_template(sql)
        if template.arity != len(params):
            raise ValidationError(
                f"Expr 需要 {template.arity} 个参数, 实际 {len(params)} 个", field="expr"
            )
        self.sql = sql
        self.params = params
        self.template = template

    def __repr__(self) -> str:
        return f"Expr({self.sql!r}, params={len(self.params)})"

    def render(self, offset: int) -> str:
        """The SQL with its placeholders numbered after ``offset`` earlier parameters."""
        return self.template.render(offset)


def like_escape(text: str) -> str:
    """``text`` with LIKE's wildcards (``%``, ``_``) and the escape character (``\\``)
    escaped, so it matches literally inside a pattern (PostgreSQL's default ESCAPE)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_contains(text: str) -> str:
    """A LIKE/ILIKE pattern matching values that contain ``text`` literally: ``%text%``.

    ``query.where_like("title", like_contains(q), case_insensitive=True)``
    """
    return f"%{like_escape(text)}%"


def check_ident(name: str, what: str = "identifier") -> str:
    """``name`` if it is a plain SQL identifier, else ValidationError naming ``what``."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ValidationError(f"非法的标识符: {what}", field=what)
    return name


@lru_cache(maxsize=2048)
def quote_ident(name: str) -> str:
    """``"name"`` after checking it; dotted names (``schema.table``) quote each part."""
    parts = name.split(".")
    if len(parts) > 2:
        raise ValidationError("非法的标识符", field=name[:64])
    return ".".join('"' + check_ident(part, part[:64] or "identifier") + '"' for part in parts)
