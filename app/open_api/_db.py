"""Connection access for the open API, plus a statement counter for tests and benchmarks.

The open API needs a few things an ORM hides: ``COPY`` (log batches), exact
control of one short transaction (deductions) and ``LISTEN`` (config changes),
so it talks to the asyncpg pool directly. The pool is luser_db's primary pool
unless one is set explicitly (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from luser_common import DatabaseUnavailable
from luser_db._pool import pooled_connection  # until this module moves onto luser_db.connection()

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

__all__ = ["Conn", "StatementCounter", "connection", "count_statements", "get_pool", "set_pool"]

# Failing to get a connection at all (server full, down, or pool timeout) is a 503.
_CONNECT_ERRORS = (
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)

_pool: tuple[asyncpg.Pool, asyncio.AbstractEventLoop] | None = None
_counters: set[StatementCounter] = set()

_WRITE_VERBS = ("insert", "update", "delete", "copy", "merge")


def _is_driver_internal(sql: str) -> bool:
    # asyncpg's introspection queries: type info and its JIT toggle around them.
    return "typeinfo_tree" in sql or "set_config('jit'" in sql or "current_setting('jit')" in sql


class StatementCounter:
    """Collects the SQL text of every statement sent through :func:`connection`."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: Any) -> None:
        self.statements.append(str(record.query))

    @property
    def reads(self) -> list[str]:
        """Statements that only read: SELECT/WITH without a data-changing verb.

        asyncpg's own catalog introspection (type codecs, the first time a
        connection meets an array or composite type) is not an application read
        and is left out; see ``driver_statements``.
        """
        out = []
        for sql in self.statements:
            if _is_driver_internal(sql):
                continue
            text = sql.strip().lower()
            if text.startswith(("select", "with")) and not any(v in text for v in _WRITE_VERBS):
                out.append(sql)
        return out

    @property
    def driver_statements(self) -> list[str]:
        return [s for s in self.statements if _is_driver_internal(s)]

    @property
    def writes(self) -> list[str]:
        """Statements that change data (including WITH ... INSERT/UPDATE)."""
        reads = set(self.reads)
        return [
            s
            for s in self.statements
            if s not in reads
            and not _is_driver_internal(s)
            and any(v in s.lower() for v in _WRITE_VERBS)
        ]


@asynccontextmanager
async def count_statements() -> AsyncIterator[StatementCounter]:
    """Count statements issued by the open API inside the block (all tasks)."""
    counter = StatementCounter()
    _counters.add(counter)
    try:
        yield counter
    finally:
        # asyncpg delivers query-log callbacks with call_soon: let them run.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        _counters.discard(counter)


def set_pool(pool: asyncpg.Pool | None) -> None:
    """Use ``pool`` for every open API statement on the calling event loop
    (``None`` -> back to luser_db's pool). An asyncpg pool belongs to one loop, so
    code on any other loop (a server thread in tests) keeps using luser_db's pools."""
    global _pool
    _pool = None if pool is None else (pool, asyncio.get_running_loop())


async def get_pool() -> asyncpg.Pool:
    if _pool is not None and _pool[1] is asyncio.get_running_loop():
        return _pool[0]
    # luser_db's primary pool (lazily opened from the database config).
    from luser_db import get_pool as luser_pool

    pool: asyncpg.Pool = await luser_pool()
    return pool


@asynccontextmanager
async def connection(*, stateless: bool = False) -> AsyncIterator[Conn]:
    """A pooled connection; statements on it are seen by active counters.

    ``stateless=True``: the block leaves no session state, so luser_db's pool
    returns the connection without asyncpg's reset round trip (see
    ``luser_db.connection``). The hot path's statements qualify.
    """
    if _pool is not None and _pool[1] is asyncio.get_running_loop():
        source: Any = _acquired(_pool[0])
    else:
        source = pooled_connection(stateless=stateless)
    async with source as conn:
        counters = tuple(_counters)
        for counter in counters:
            conn.add_query_logger(counter)
        try:
            yield conn
        finally:
            for counter in counters:
                conn.remove_query_logger(counter)


@asynccontextmanager
async def _acquired(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    try:
        conn = await pool.acquire()
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable() from exc
    try:
        yield conn
    finally:
        await pool.release(conn)
