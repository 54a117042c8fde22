"""Which tables a SQL statement reads or writes, for the query cache's invalidation.

Both directions err on the side of evicting too much: a read lists every name that
follows FROM or JOIN anywhere in the text (subqueries included, a function name
now and then), a write every target of INSERT / UPDATE / DELETE / MERGE / COPY /
TRUNCATE / ALTER / DROP, CTEs included. A statement that may write but names no
table (``DO``, ``CALL``) writes :data:`ALL`. Names are folded to lower case without
schema, so ``orm.videos``, ``"videos"`` and ``VIDEOS`` are the same table to the
cache -- merging two schemas' tables only ever evicts more. What no parser can see
(a function or trigger writing elsewhere, a view) is declared with ``tables=``.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["ALL", "normalize", "read_tables", "write_tables"]

ALL = "*"  # "every table": bumps the cache's global generation

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})*"
_KEYWORDS = (
    "WHERE|JOIN|ON|LEFT|RIGHT|INNER|FULL|CROSS|GROUP|ORDER|LIMIT|OFFSET|WINDOW|UNION"
    "|EXCEPT|INTERSECT|FOR|HAVING|NATURAL|USING|LATERAL|RETURNING|SET"
)
_ALIAS = rf"(?:\s+(?:AS\s+)?(?!(?:{_KEYWORDS})\b){_NAME})?"
_READ = re.compile(
    rf"\b(?:FROM|JOIN)\s+(?:ONLY\s+)?({_QUALIFIED}{_ALIAS}(?:\s*,\s*(?:ONLY\s+)?{_QUALIFIED}{_ALIAS})*)",
    re.IGNORECASE,
)
# ``JOIN b ON ..., c``: a FROM-list item after a join condition; may also match a
# select-list column now and then, which only tracks a table that does not exist.
_AFTER_COMMA = re.compile(
    rf",\s*(?:ONLY\s+)?({_QUALIFIED}){_ALIAS}\s*(?=$|[,);]|(?:{_KEYWORDS})\b)",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(rf"(?:ONLY\s+)?({_QUALIFIED}){_ALIAS}", re.IGNORECASE)
_WRITE = re.compile(
    rf"\b(?:INSERT\s+INTO|UPDATE(?!\s+(?:NOWAIT|SKIP)\b)|DELETE\s+FROM|MERGE\s+INTO"
    rf"|TRUNCATE(?:\s+TABLE)?|ALTER\s+TABLE(?:\s+IF\s+EXISTS)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?"
    rf"|^\s*COPY)\s+(?:ONLY\s+)?({_QUALIFIED}(?:\s*,\s*(?:ONLY\s+)?{_QUALIFIED})*)",
    re.IGNORECASE,
)
_WRITE_WORDS = frozenset(
    {"insert", "update", "delete", "merge", "truncate", "copy", "with", "alter", "drop"}
)
_OPAQUE_WORDS = frozenset({"do", "call"})  # may write anything, names nothing
_FIRST_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.DOTALL)


def normalize(name: str) -> str:
    """``Orm."Videos"`` -> ``videos``: the last part, unquoted, lower case."""
    last = re.findall(_NAME, name)[-1] if name else name
    if last.startswith('"'):
        last = last[1:-1].replace('""', '"')
    return last.lower()


def _names(chunk: str) -> list[str]:
    return [normalize(m.group(1)) for m in _LIST_ITEM.finditer(chunk)]


@lru_cache(maxsize=4096)
def read_tables(sql: str) -> frozenset[str]:
    """Every table ``sql`` may read (see the module docstring)."""
    found: set[str] = set()
    for match in _READ.finditer(sql):
        found.update(_names(match.group(1)))
    if found:
        found.update(normalize(m.group(1)) for m in _AFTER_COMMA.finditer(sql))
    return frozenset(found)


@lru_cache(maxsize=4096)
def write_tables(sql: str) -> frozenset[str]:
    """The tables ``sql`` writes; empty for a read. Cached per SQL text: the ORM
    sends the same texts over and over, and this runs for every statement."""
    first = _FIRST_WORD.match(sql)
    word = first.group(1).lower() if first else ""
    if word in _OPAQUE_WORDS:
        return frozenset((ALL,))
    if word not in _WRITE_WORDS:
        return frozenset()
    if word == "copy" and re.match(r"\s*COPY\s*\(", sql, re.IGNORECASE):
        return frozenset()  # COPY (query) TO: a read
    found: set[str] = set()
    for match in _WRITE.finditer(sql):
        found.update(_names(match.group(1)))
    return frozenset(found)
