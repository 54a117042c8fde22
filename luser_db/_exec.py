"""The one door every statement goes through: model, builder, ``Db``, ``iterate``, COPY
and the connections handed out by ``luser_db.connection()``.

:func:`run` picks the connection (the current transaction's, or a pooled one) and
:func:`send` runs one driver call on it: driver errors become luser errors here and
nowhere else, and when anyone is watching (``on_query`` listeners, the ``luser_db.sql``
logger at DEBUG, a slow-query threshold) the call is timed and reported. Kept flat
on purpose: this is the hot path of every ORM call, and with nobody watching it
costs one flag test.
"""

from __future__ import annotations

from asyncio import get_running_loop
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from . import _observe
from ._context import current_txs, running_task
from ._datasource import PRIMARY
from ._pool import acquire, get_pool, pools, release, touches_session
from ._replicas import inline_target, plain_sources, run_routed
from .errors import DB_ERRORS, SharedConnectionError, failure

__all__ = [
    "control",
    "copy_records",
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "guard",
    "listeners",
    "rowcount",
    "run",
    "send",
]

# Called with each SQL string before it is sent (``luser_db.testing.assert_queries``).
listeners: list[Callable[[str], None]] = []

# True while the query cache announces a write: its NOTIFYs are infrastructure, like a
# pool's reset, so neither assert_queries nor on_query listeners count them.
internal: ContextVar[bool] = ContextVar("luser_db_internal", default=False)

# Set by the query cache while it is enabled: the tables a statement writes, and what
# to do once such a statement succeeded (evict now or at commit). None: no cost.
written_tables: Callable[[str], frozenset[str]] | None = None
wrote: Callable[[Iterable[str], str], Coroutine[Any, Any, None]] | None = None
# Set with ``wrote``: announce tables whose writes have committed (no transaction is
# open on their source), skipping ``wrote``'s transaction lookup on the two paths that
# know: a statement outside a transaction, and a transaction's COMMIT.
committed: Callable[[Collection[str]], Coroutine[Any, Any, None]] | None = None

Op = Callable[[Any, str, Sequence[Any]], Coroutine[Any, Any, Any]]

_watch = _observe.watch
# Whether luser_db.sql may log at DEBUG, answered from the logger's cache in C: the
# hot paths below test it per statement, and send() (their slow path) asks for real.
_log_maybe = _observe.sql_log_maybe_enabled


async def send(conn: Any, op: Op, sql: str, args: Sequence[Any], source: str, in_tx: bool) -> Any:
    """``op(conn, sql, args)`` with errors translated and, when watched, timed and reported."""
    if (not _watch.active and not _observe.sql_log_enabled()) or internal.get():
        try:
            return await op(conn, sql, args)
        except DB_ERRORS as exc:
            raise failure(exc, sql, in_tx) from exc
    started = _observe.clock()
    try:
        result = await op(conn, sql, args)
    except DB_ERRORS as exc:
        error = failure(exc, sql, in_tx)
        _observe.report(sql, args, source, started, None, error)
        raise error from exc
    _observe.report(sql, args, source, started, result, None)
    return result


def guard(
    conn: Any,
    step: Callable[[], Any],
    what: str,
    source: str = PRIMARY,
    in_tx: bool = True,
) -> Coroutine[Any, Any, Any]:
    """A driver step that is not a caller's statement (BEGIN, COMMIT, a cursor fetch),
    through the same door; ``what`` names it for listeners and logs. ``in_tx=False``
    for COMMIT: a connection lost during it leaves the outcome unknown."""
    if not _watch.active and not _log_maybe():
        return _step(step, what, in_tx)  # send()'s fast path, without its op wrapper
    return send(conn, _StepOp(step), what, (), source, in_tx)


def control(
    conn: Any, sql: str, what: str, source: str = PRIMARY, in_tx: bool = True
) -> Coroutine[Any, Any, Any]:
    """A transaction-control statement (BEGIN, COMMIT, SAVEPOINT ...) sent as it is,
    through the same door; listeners and logs see ``what`` (``"SAVEPOINT"``, not the
    savepoint's name). ``in_tx=False`` for COMMIT, as for :func:`guard`."""
    if not _watch.active and not _log_maybe():
        return _control(conn, sql, in_tx)
    return send(conn, _ControlOp(sql), what, (), source, in_tx)


async def _control(conn: Any, sql: str, in_tx: bool) -> Any:
    try:
        return await conn.execute(sql)
    except DB_ERRORS as exc:
        raise failure(exc, sql, in_tx) from exc


class _ControlOp:
    __slots__ = ("sql",)

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def __call__(self, conn: Any, what: str, args: Sequence[Any]) -> Any:
        return conn.execute(self.sql)


async def _step(step: Callable[[], Any], what: str, in_tx: bool) -> Any:
    try:
        return await step()
    except DB_ERRORS as exc:
        raise failure(exc, what, in_tx) from exc


class _StepOp:
    __slots__ = ("step",)

    def __init__(self, step: Callable[[], Any]) -> None:
        self.step = step

    def __call__(self, conn: Any, sql: str, args: Sequence[Any]) -> Any:
        return self.step()


def run(
    op: Op, sql: str, args: Sequence[Any], source: str = PRIMARY, raw: bool = False
) -> Coroutine[Any, Any, Any]:
    """Run ``op(conn, sql, args)`` in the current transaction or on a pooled connection."""
    # A plain function handing back _run()'s coroutine: one frame per statement.
    if written_tables is not None:
        tables = written_tables(sql)
        if tables:
            return _run(op, sql, args, source, raw, False, tables)
    return _run(op, sql, args, source, raw)


async def _run(
    op: Op,
    sql: str,
    args: Sequence[Any],
    source: str,
    raw: bool,
    routed: bool = False,
    tables: frozenset[str] = frozenset(),
) -> Any:
    """Run ``op(conn, sql, args)`` in the current transaction or on a pooled connection.

    A source with read replicas (or pinned with ``"primary"``) is resolved by
    ``_replicas``: to its primary here, or through ``run_routed`` (a replica read, a
    write that makes reads sticky), which calls back with ``routed``. ``tables``: what
    the statement writes, for the query cache (noted on the transaction, which
    announces them after its commit; outside one announced once the statement ran).
    """
    if not routed and source not in plain_sources:
        target = inline_target(source, sql)
        if target is None:
            result = await run_routed(_run, op, sql, args, source, raw)
            if tables and wrote is not None:
                await wrote(tables, source)
            return result
        source = target
    if listeners and not internal.get():
        for listener in listeners:
            listener(sql)
    txs = current_txs.get()
    if txs is not None:
        tx = txs.get(source)
        if tx is not None and tx.active:
            owner = tx.owner  # tx.connection(), inlined: the owner task's check
            if (owner is not None and running_task(get_running_loop()) is not owner) or tx.busy:
                raise SharedConnectionError()
            conn = tx.driver
            tx.busy = True
            try:
                if raw and touches_session(sql):
                    conn.mark_session_dirty(sql)  # e.g. a plain SET outlives the transaction
                if _watch.active or _log_maybe():
                    result = await send(conn, op, sql, args, source, True)
                else:
                    # send()'s fast path, inlined: one coroutine frame less per statement.
                    try:
                        result = await op(conn, sql, args)
                    except DB_ERRORS as exc:
                        raise failure(exc, sql, True) from exc
            finally:
                tx.busy = False
            if tables:
                tx.levels[-1].written.update(tables)  # tx.wrote(), inlined
            return result
    entry = pools.get(source)
    if entry is not None and entry[1] is get_running_loop():
        pool = entry[0]
    else:
        pool = await get_pool(source)
    conn = await acquire(pool, source)
    try:
        if raw and touches_session(sql):
            conn.mark_session_dirty(sql)
        if _watch.active or _log_maybe():
            result = await send(conn, op, sql, args, source, False)
        else:
            try:
                result = await op(conn, sql, args)
            except DB_ERRORS as exc:
                raise failure(exc, sql, False) from exc
    finally:
        # Shielded or run without a suspension point (see _pool.release), so a
        # cancelled task still returns the connection.
        await release(pool, conn)
    if tables and committed is not None:
        await committed(tables)  # wrote(), knowing no transaction is open here
    return result


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


OPS: dict[str, Op] = {
    "fetch": _fetch,
    "fetchrow": _fetchrow,
    "fetchval": _fetchval,
    "execute": _execute,
    "executemany": _executemany,
}


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


def copy_op(table: str, columns: Sequence[str] | None, schema: str | None, **options: Any) -> Op:
    """The driver call that COPYs the records passed as ``args`` into ``table``."""

    def op(conn: Any, sql: str, args: Sequence[Any]) -> Coroutine[Any, Any, Any]:
        return conn.copy_records_to_table(
            table,
            records=args,
            columns=None if columns is None else list(columns),
            schema_name=schema,
            **options,
        )

    return op


async def copy_records(
    table: str,
    columns: Sequence[str] | None,
    records: Sequence[Sequence[Any]],
    schema: str | None,
    source: str = PRIMARY,
) -> int:
    """COPY ``records`` into ``table`` (binary protocol); returns the row count."""
    name = f"{schema}.{table}" if schema else table
    status = await run(copy_op(table, columns, schema), f"COPY {name}", records, source)
    return rowcount(status)


@lru_cache(maxsize=256)  # a C call per statement for the few tags a program sees most
def rowcount(status: str | None) -> int:
    """Rows affected, from a status tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    if not status:
        return 0
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
