"""What changes behind PgBouncer in transaction pooling mode.

Each transaction (or autocommit statement) may run on a different server
connection, shared with other clients. So:

* ``"transaction"`` (any PgBouncer version): asyncpg's statement cache is off, so
  statements are unnamed and die with their transaction. The statements asyncpg must
  name (server-side cursors for ``iterate()``, ``prepare()``) get names unique across
  processes, so a name left behind on a shared server never collides with another
  client's. Costs one extra round trip per call (Parse/Describe, then Bind/Execute).
* ``"transaction_prepared"`` (PgBouncer >= 1.21 with ``max_prepared_statements`` > 0):
  PgBouncer tracks protocol-level prepared statements itself, so the cache stays on and
  a call is one round trip, as when connected directly. An older PgBouncer passes the
  names through to whichever server it picks, and calls then fail at random with
  "prepared statement ... does not exist": :func:`check_prepared_statements_tracked`
  refuses such a PgBouncer when the pool opens.

In both modes a statement that would leave session state on the shared server (a plain
``SET``, ``LISTEN``, a session advisory lock, a temporary table ...) is refused before it
is sent: it would leak to other clients and be missing on this client's next
transaction. ``SET LOCAL`` / ``set_config(..., true)`` inside a transaction, the
``transaction(statement_timeout=...)`` options, and ``database.direct_url`` for
session work (LISTEN, migrations) are the PgBouncer-safe forms.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from typing import Any, Literal

from luser_common import ConfigError, DatabaseError

from ._sql import split_statements

__all__ = [
    "Mode",
    "PreparedStatementsUntracked",
    "SessionStateRefused",
    "check_prepared_statements_tracked",
    "leaves_session_state",
    "unique_name",
]

Mode = Literal[False, "transaction", "transaction_prepared"]


class SessionStateRefused(DatabaseError):
    """Raw SQL that would leave session state on a server connection PgBouncer shares."""

    code = "SESSION_STATE_BEHIND_PGBOUNCER"
    default_message = "经 PgBouncer 事务池连接时不能设置会话级状态"


class PreparedStatementsUntracked(ConfigError):
    """``pgbouncer = "transaction_prepared"`` but PgBouncer does not track prepared statements."""

    code = "PGBOUNCER_PREPARED_STATEMENTS_UNTRACKED"
    default_message = "PgBouncer 未接管预备语句, 不能用 pgbouncer = 'transaction_prepared'"


async def check_prepared_statements_tracked(conn: Any, source: str) -> None:
    """Raise PreparedStatementsUntracked unless PgBouncer renames prepared statements.

    PgBouncer >= 1.21 with ``max_prepared_statements`` > 0 keeps each client's statement
    names to itself and prepares them on a server under its own (``PGBOUNCER_<n>``).
    Older versions, or ``max_prepared_statements = 0``, pass the name through: it then
    shows in the server's ``pg_prepared_statements``. Both statements run in one
    transaction, so on one server connection. (The admin console's SHOW VERSION is for
    admin users only; this needs nothing but the client's own rights.)
    """
    async with conn.transaction():
        statement = await conn.prepare("select 1")
        untouched = await conn.fetchval(
            "select count(*) from pg_prepared_statements where name = $1", statement.get_name()
        )
    if untouched:
        raise PreparedStatementsUntracked(
            "pgbouncer = 'transaction_prepared' 需要 PgBouncer >= 1.21 且"
            " max_prepared_statements > 0: 预备语句名原样到达了 PostgreSQL (PgBouncer 版本过旧,"
            " max_prepared_statements = 0, 或并未经过 PgBouncer)。请升级 PgBouncer,"
            " 或改用 pgbouncer = 'transaction'",
            field="pgbouncer",
            details={"data_source": source},
        )


def unique_name(prefix: str) -> str:
    """A statement/portal name no other process picks (asyncpg's counter is per process)."""
    return f"__luser_{prefix}_{uuid.uuid4().hex}__"


_SESSION_PATTERNS = (
    # SET / SET SESSION ... (SET LOCAL and SET TRANSACTION end with the transaction)
    re.compile(r"^set\s+(?!local\b|transaction\b)"),
    re.compile(r"^(listen|prepare|load)\b"),
    re.compile(r"^declare\b.*\bwith\s+hold\b", re.S),
    re.compile(
        r"^create\s+(?:(?:global|local)\s+)?temp(?:orary)?\s+(?!.*\bon\s+commit\s+drop\b)", re.S
    ),
    re.compile(r"\binto\s+temp(?:orary)?\b"),
    re.compile(r"\bpg_(?:try_)?advisory_(?:un)?lock(?:_shared|_all)?\s*\("),
    re.compile(r"\bset_config\s*\((?:[^()]|\([^()]*\))*,\s*false\s*\)"),
)


_LEADING_COMMENTS = re.compile(r"^(?:\s*(?:--[^\n]*(?:\n|$)|/\*.*?\*/))*", re.S)


@lru_cache(maxsize=4096)
def leaves_session_state(sql: str) -> str | None:
    """The first statement of ``sql`` that would outlive its transaction, else None."""
    for part in split_statements(sql):
        text = " ".join(_LEADING_COMMENTS.sub("", part).split()).lower().lstrip("(")
        if any(pattern.search(text) for pattern in _SESSION_PATTERNS):
            return part.strip()
    return None
