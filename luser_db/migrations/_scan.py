"""Split SQL text into statements, aware of quotes, dollar quotes and comments.

Each statement comes back twice: ``text`` as written (what gets executed) and
``code`` with comments dropped, literal contents blanked and whitespace collapsed
(what the lint rules match against, so a ``DROP TABLE`` inside a string or a
comment never trips them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Statement", "split_statements"]

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    code: str
    line: int  # 1-based line of the statement's first character


def split_statements(sql: str) -> list[Statement]:
    """Statements separated by top-level semicolons; empty ones are dropped."""
    out: list[Statement] = []
    code: list[str] = []
    start, first_code = 0, -1
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == ";":
            _flush(sql, start, i, first_code, "".join(code), out)
            code, start, first_code = [], i + 1, -1
            i += 1
            continue
        end = _skip_token(sql, i, ch, nxt)
        piece = _code_of(sql[i:end], ch, nxt)
        if first_code < 0 and piece.strip():
            first_code = i
        code.append(piece)
        i = end
    _flush(sql, start, n, first_code, "".join(code), out)
    return out


def _skip_token(sql: str, i: int, ch: str, nxt: str) -> int:
    """Index just past the token starting at ``i`` (a literal, a comment or one char)."""
    if ch == "-" and nxt == "-":
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if ch == "/" and nxt == "*":
        return _skip_block_comment(sql, i)
    if ch == "'":
        escapes = i > 0 and sql[i - 1] in "eE" and not _is_word_char(sql, i - 2)
        return _skip_quoted(sql, i, "'", backslash=escapes)
    if ch == '"':
        return _skip_quoted(sql, i, '"', backslash=False)
    if ch == "$" and not _is_word_char(sql, i - 1):
        tag = _DOLLAR_TAG.match(sql, i)
        if tag:
            end = sql.find(tag.group(0), tag.end())
            return len(sql) if end < 0 else end + len(tag.group(0))
    return i + 1


def _skip_block_comment(sql: str, i: int) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            # A doubled quote is an escaped quote, not the end.
            if j + 1 < len(sql) and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def _is_word_char(sql: str, j: int) -> bool:
    return j >= 0 and (sql[j].isalnum() or sql[j] == "_")


def _code_of(token: str, ch: str, nxt: str) -> str:
    if len(token) == 1:
        return token
    if ch == "-" or (ch == "/" and nxt == "*"):
        return " "
    if ch == "'" or ch == "$":
        return "''"
    return token  # quoted identifiers keep their text: lint needs table names


def _flush(
    sql: str, start: int, end: int, first_code: int, code: str, out: list[Statement]
) -> None:
    compact = " ".join(code.split())
    if not compact:
        return
    # The line of the first real token, not of a comment above the statement.
    line = sql.count("\n", 0, first_code) + 1
    out.append(Statement(text=sql[start:end].strip(), code=compact, line=line))
