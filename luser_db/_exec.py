"""The one place SQL is sent: joins the current transaction or borrows a pooled connection.

Every call maps driver errors through :func:`errors.translate` and notifies the
query listeners (``luser_db.testing.assert_queries``). Kept flat on purpose:
this is the hot path of every ORM call.
"""

from __future__ import annotations

from asyncio import get_running_loop
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._datasource import PRIMARY
from ._pool import acquire, get_pool, pools, touches_session
from ._transaction import _current
from .errors import DB_ERRORS, translate

__all__ = ["copy_records", "execute", "executemany", "fetch", "fetchrow", "fetchval", "listeners"]

# Called with each SQL string before it is sent; empty unless a test is counting.
listeners: list[Callable[[str], None]] = []

Op = Callable[[Any, str, Sequence[Any]], Coroutine[Any, Any, Any]]


async def run(
    op: Op, sql: str, args: Sequence[Any], source: str = PRIMARY, raw: bool = False
) -> Any:
    """Run ``op(conn, sql, args)`` in the current transaction or on a pooled connection."""
    if listeners:
        for listener in listeners:
            listener(sql)
    txs = _current.get()
    if txs is not None:
        tx = txs.get(source)
        if tx is not None and tx.active:
            conn = tx.connection()
            tx.busy = True
            try:
                if raw and touches_session(sql):
                    conn.mark_session_dirty()  # e.g. a plain SET outlives the transaction
                return await op(conn, sql, args)
            except DB_ERRORS as exc:
                raise translate(exc) from exc
            finally:
                tx.busy = False
    entry = pools.get(source)
    if entry is not None and entry[1] is get_running_loop():
        pool = entry[0]
    else:
        pool = await get_pool(source)
    conn = await acquire(pool, source)
    try:
        if raw and touches_session(sql):
            conn.mark_session_dirty()
        return await op(conn, sql, args)
    except DB_ERRORS as exc:
        raise translate(exc) from exc
    finally:
        # Pool.release shields itself, so a cancelled task still returns the connection.
        await pool.release(conn)


def _fetch(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
    return conn.fetch(sql, *args)


def _fetchrow(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
    return conn.fetchrow(sql, *args)


def _fetchval(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
    return conn.fetchval(sql, *args)


def _execute(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
    return conn.execute(sql, *args)


def _executemany(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
    return conn.executemany(sql, args)


def fetch(
    sql: str, args: Sequence[Any] = (), source: str = PRIMARY, raw: bool = False
) -> Coroutine[Any, Any, Any]:
    # A plain function handing back run()'s coroutine: one frame less per query.
    return run(_fetch, sql, args, source, raw)


def fetchrow(
    sql: str, args: Sequence[Any] = (), source: str = PRIMARY, raw: bool = False
) -> Coroutine[Any, Any, Any]:
    return run(_fetchrow, sql, args, source, raw)


def fetchval(
    sql: str, args: Sequence[Any] = (), source: str = PRIMARY, raw: bool = False
) -> Coroutine[Any, Any, Any]:
    return run(_fetchval, sql, args, source, raw)


async def execute(
    sql: str, args: Sequence[Any] = (), source: str = PRIMARY, raw: bool = False
) -> int:
    """Run a statement; returns the affected row count from its status tag."""
    status = await run(_execute, sql, args, source, raw)
    return rowcount(status)


async def executemany(
    sql: str, rows: Sequence[Sequence[Any]], source: str = PRIMARY, raw: bool = False
) -> None:
    await run(_executemany, sql, rows, source, raw)


async def copy_records(
    table: str,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]],
    schema: str | None,
    source: str = PRIMARY,
) -> int:
    """COPY ``records`` into ``table`` (binary protocol); returns the row count."""

    def op(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
        return conn.copy_records_to_table(
            table, records=args, columns=list(columns), schema_name=schema
        )

    status = await run(op, f"COPY {table}", records, source)
    return rowcount(status)


def rowcount(status: str | None) -> int:
    """Rows affected, from a status tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    if not status:
        return 0
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
