"""``luser_db.connection()``: a driver-level connection that still goes through the door.

For work the ORM does not model (COPY, a hand-tuned statement, a one-statement
deduction with ``set_config(..., true)``): ``fetch``/``fetchrow``/``fetchval``/
``execute``/``executemany``/``copy_records_to_table``/``copy_from_query`` take
asyncpg's ``$n`` SQL and arguments, and run through the executor, so errors come
back as luser errors and listeners, logging and metrics see every statement.

Inside ``async with transaction():`` the block gets the transaction's own
connection for that source (its statements commit or roll back with it);
outside, a pooled connection returned when the block ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

from luser_common import InternalServerError

from . import _exec
from ._datasource import PRIMARY
from ._pool import acquire, connect_dedicated, get_pool
from ._transaction import _Tx, current_tx

__all__ = ["Connection", "connection", "direct_connection"]


class Connection:
    """One connection lent by :func:`connection`; every call runs through the executor."""

    __slots__ = ("_conn", "_source", "_tx", "_unannounced")

    def __init__(self, conn: Any, source: str, tx: _Tx | None) -> None:
        self._conn = conn
        self._source = source
        self._tx = tx
        self._unannounced: frozenset[str] = frozenset()  # written inside a manual BEGIN

    def __repr__(self) -> str:
        where = "transaction" if self._tx is not None else "pooled"
        return f"<luser_db.Connection {self._source!r} {where}>"

    @property
    def source(self) -> str:
        return self._source

    @property
    def raw(self) -> Any:
        """The asyncpg connection underneath, for driver features with no door here
        (type codecs, ``prepare``). Statements sent on it bypass translation and
        listeners: prefer the methods of this class."""
        return self._conn

    def in_transaction(self) -> bool:
        """Whether this block joined an enclosing ``transaction()``."""
        return self._tx is not None

    def is_in_transaction(self) -> bool:
        """Whether the server side is inside a transaction block (asyncpg's meaning)."""
        return bool(self._conn.is_in_transaction())

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        result: list[Any] = await self._run(_exec.OPS["fetch"], sql, args)
        return result

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run(_exec.OPS["fetchrow"], sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(_exec.OPS["fetchval"], sql, args)

    async def execute(self, sql: str, *args: Any) -> str:
        """Run a statement; returns its status tag (``"UPDATE 3"``), as asyncpg does."""
        status: str = await self._run(_exec.OPS["execute"], sql, args)
        return status

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self._run(_exec.OPS["executemany"], sql, args)

    async def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Sequence[Sequence[Any]],
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        **options: Any,
    ) -> str:
        """COPY ``records`` into the table (binary); returns the status tag ``COPY n``."""
        name = f"{schema_name}.{table_name}" if schema_name else table_name
        op = _exec.copy_op(table_name, columns, schema_name, **options)
        status: str = await self._run(op, f"COPY {name}", records)
        return status

    async def copy_from_query(self, query: str, *args: Any, output: Any, **options: Any) -> str:
        """COPY the rows of ``query`` to ``output`` (a path, file-like or async callable)."""

        def op(conn: Any, sql: str, params: Sequence[Any]) -> Coroutine[Any, Any, Any]:
            return conn.copy_from_query(sql, *params, output=output, **options)

        status: str = await self._run(op, query, args)
        return status

    async def _run(self, op: _exec.Op, sql: str, args: Sequence[Any]) -> Any:
        if _exec.listeners:
            for listener in _exec.listeners:
                listener(sql)
        tx = self._tx
        if tx is None:
            in_tx = self._conn.is_in_transaction()  # a BEGIN sent on this connection
            result = await _exec.send(self._conn, op, sql, args, self._source, in_tx)
            if _exec.written_tables is not None:
                await self._evict(sql)
            return result
        if not tx.active:  # the block outlived its transaction: that connection is gone
            raise InternalServerError("事务已结束, 不能再使用它的连接")
        tx.connection()  # the owner-task check: a gathered task must not share it
        tx.busy = True
        try:
            result = await _exec.send(self._conn, op, sql, args, self._source, True)
        finally:
            tx.busy = False
        if _exec.written_tables is not None and _exec.wrote is not None:
            tables = _exec.written_tables(sql)
            if tables:
                await _exec.wrote(tables, self._source)  # at the transaction's commit
        return result

    async def _evict(self, sql: str) -> None:
        """The query cache's hook outside ``transaction()``: writes evict when sent, and
        again when a BEGIN the caller sent by hand ends (the data changes at its COMMIT)."""
        assert _exec.written_tables is not None and _exec.wrote is not None
        tables = _exec.written_tables(sql)
        if self._conn.is_in_transaction():
            self._unannounced |= tables
        elif self._unannounced:
            tables, self._unannounced = tables | self._unannounced, frozenset()
        if tables:
            await _exec.wrote(tables, self._source)


class connection:
    """``async with luser_db.connection() as conn:`` -- see the module docstring.

    Outside a transaction the release does asyncpg's full reset (one round trip)
    unless ``stateless=True``: the caller's promise that the block leaves no session
    state (no ``SET``, ``LISTEN``, temporary tables or session advisory locks;
    ``SET LOCAL`` and ``set_config(..., true)`` are fine). A connection released
    mid-transaction is rolled back either way. A plain class: it is on the open
    API's hot path, where ``asynccontextmanager`` costs more than the statement.
    """

    __slots__ = ("_lent", "_pool", "source", "stateless")

    def __init__(self, source: str = PRIMARY, *, stateless: bool = False) -> None:
        self.source = source
        self.stateless = stateless
        self._pool: Any = None

    async def __aenter__(self) -> Connection:
        tx = current_tx(self.source)
        if tx is not None:
            return Connection(tx.connection(), self.source, tx)
        pool = await get_pool(self.source)
        conn = await acquire(pool, self.source)
        if not self.stateless:
            conn.mark_session_dirty()
        self._pool = pool
        self._lent = conn
        return Connection(conn, self.source, None)

    async def __aexit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.release(self._lent)  # shielded: a cancelled task still returns it
            self._lent = None


@asynccontextmanager
async def direct_connection(source: str = PRIMARY) -> AsyncIterator[Connection]:
    """``async with luser_db.direct_connection() as conn:`` -- a connection of its own.

    Opened to the data source's ``direct_url`` (else its URL), outside the pool and
    outside any ``transaction()`` (it never joins one), closed when the block ends.
    For statements PostgreSQL refuses inside a transaction block (``DETACH PARTITION
    ... CONCURRENTLY``, ``CREATE INDEX CONCURRENTLY``, ``VACUUM``) and for session
    state (``SET lock_timeout``, session advisory locks) that must not reach a pooled
    connection or pass through a PgBouncer in transaction mode. Each statement
    autocommits unless the block sends ``BEGIN`` itself.
    """
    conn = await connect_dedicated(source)
    try:
        yield Connection(conn, source, None)
    finally:
        await conn.close()  # ends the session: its settings and locks go with it
