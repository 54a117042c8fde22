"""Context-variable transactions: code inside ``async with transaction()`` joins it.

One ContextVar maps data-source name → the open ``_Tx``. The outermost block
acquires a pooled connection and starts ``conn.transaction()``; nested blocks
open another ``conn.transaction()``, which asyncpg turns into a SAVEPOINT.

Tasks created inside a block inherit the context, so ``asyncio.gather`` would
make them share one connection. ``_Tx.connection()`` checks the calling task
and raises a clear error instead of asyncpg's "another operation is in progress".
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from luser_common import InternalServerError, ValidationError

from . import _exec
from ._context import current_txs
from ._datasource import PRIMARY
from ._pool import acquire, get_pool, pools, release
from ._retry import full_jitter, retry

__all__ = [
    "SharedConnectionError",
    "current_connection",
    "in_transaction",
    "on_commit",
    "on_rollback",
    "retry_transaction",
    "transaction",
    "transactional",
]

P = ParamSpec("P")
R = TypeVar("R")
Callback = Callable[[], Any]

ISOLATION_LEVELS = ("read_committed", "repeatable_read", "serializable", "read_uncommitted")

# Kept under its old name for luser_db.testing, which swaps the transactions in and out.
_current = current_txs


class SharedConnectionError(InternalServerError):
    """Another task tried to use a transaction's connection."""

    code = "TRANSACTION_SHARED"
    default_message = "事务连接不能被其他并发任务共享: 请在事务外创建任务, 或在任务内开启自己的事务"


class _Level:
    """One block: the outermost transaction or a savepoint, with its callbacks."""

    __slots__ = ("on_commit", "on_rollback")

    def __init__(self) -> None:
        self.on_commit: list[Callback] = []
        self.on_rollback: list[Callback] = []


class _Tx:
    """The open transaction on one data source: its connection, owner task and levels."""

    __slots__ = ("active", "busy", "conn", "levels", "owner", "source")

    def __init__(self, conn: Any, source: str, owner: asyncio.Task[Any] | None) -> None:
        self.conn = conn
        self.source = source
        self.owner = owner
        self.levels: list[_Level] = [_Level()]
        self.busy = False
        # False once the block ends: a task spawned inside it still carries this _Tx
        # in its context, and must then go to the pool like any other code.
        self.active = True

    def connection(self) -> Any:
        owner = self.owner
        if (owner is not None and asyncio.current_task() is not owner) or self.busy:
            raise SharedConnectionError()
        return self.conn


def current_tx(source: str = PRIMARY) -> _Tx | None:
    txs = current_txs.get()
    tx = None if txs is None else txs.get(source)
    return tx if tx is not None and tx.active else None


def in_transaction(source: str = PRIMARY) -> bool:
    """Whether the calling code runs inside ``transaction()`` on ``source``."""
    return current_tx(source) is not None


def current_connection(source: str = PRIMARY) -> Any:
    """The connection of the enclosing transaction on ``source`` (None outside one)."""
    tx = current_tx(source)
    return None if tx is None else tx.connection()


def on_commit(callback: Callback, *, source: str = PRIMARY) -> None:
    """Run ``callback`` (sync or async) after the outermost transaction commits."""
    _require_tx(source).levels[-1].on_commit.append(callback)


def on_rollback(callback: Callback, *, source: str = PRIMARY) -> None:
    """Run ``callback`` after the enclosing block (transaction or savepoint) rolls back."""
    _require_tx(source).levels[-1].on_rollback.append(callback)


def _require_tx(source: str) -> _Tx:
    tx = current_tx(source)
    if tx is None:
        raise InternalServerError("on_commit/on_rollback 只能在事务内调用")
    return tx


def _check_isolation(isolation: str | None) -> None:
    if isolation is not None and isolation not in ISOLATION_LEVELS:
        raise ValidationError(f"不支持的隔离级别: {isolation}", field="isolation")


_SYNC_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


def _setting_options(
    synchronous_commit: bool | str | None,
    statement_timeout: float | timedelta | None,
    lock_timeout: float | timedelta | None,
) -> tuple[tuple[str, str], ...]:
    """The ``SET LOCAL`` settings a transaction asked for, checked; () when none."""
    out: list[tuple[str, str]] = []
    if synchronous_commit is not None:
        value = synchronous_commit
        if isinstance(value, bool):
            value = "on" if value else "off"
        if value not in _SYNC_COMMIT:
            raise ValidationError(
                f"synchronous_commit 只能是 {', '.join(_SYNC_COMMIT)} 或布尔值",
                field="synchronous_commit",
            )
        out.append(("synchronous_commit", value))
    for name, timeout in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout)):
        if timeout is not None:
            out.append((name, _milliseconds(timeout, name)))
    return tuple(out)


def _milliseconds(value: float | timedelta, name: str) -> str:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(f"{name} 必须是正数 (秒)", field=name)
    return str(max(1, round(seconds * 1000)))


def _settings_sql(count: int) -> str:
    calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(count))
    return f"SELECT {calls}"


class transaction:
    """A transaction (or, nested, a savepoint) that every query inside joins.

    A clean exit commits, an exception rolls back and propagates. ``isolation``
    is one of read_committed, repeatable_read, serializable, read_uncommitted;
    ``readonly``/``deferrable`` and ``isolation`` apply to the outermost block.
    ``synchronous_commit`` (bool or a PostgreSQL value), ``statement_timeout`` and
    ``lock_timeout`` (seconds or timedelta) are ``SET LOCAL`` for the block: one
    extra round trip after BEGIN, only when given; in a savepoint they last until
    the outer transaction ends unless the savepoint rolls back.

    COMMIT is not interrupted by cancellation: a task cancelled while its COMMIT
    runs waits for the outcome, runs the callbacks that outcome calls for, then
    re-raises CancelledError, so "cancelled" never hides "committed". A connection
    lost during COMMIT raises CommitUncertain (the server may have committed).
    A plain class rather than an ``asynccontextmanager``: this runs around every
    unit of work.
    """

    __slots__ = (
        "_conn",
        "_level",
        "_settings",
        "_token",
        "_tx",
        "_xact",
        "deferrable",
        "isolation",
        "readonly",
        "using",
    )

    def __init__(
        self,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        synchronous_commit: bool | str | None = None,
        statement_timeout: float | timedelta | None = None,
        lock_timeout: float | timedelta | None = None,
        using: str = PRIMARY,
    ) -> None:
        if isolation is not None:
            _check_isolation(isolation)
        self.isolation = isolation
        self.readonly = readonly
        self.deferrable = deferrable
        self.using = using
        # Built around every unit of work: the usual block (no SET LOCAL) skips the call.
        if synchronous_commit is None and statement_timeout is None and lock_timeout is None:
            self._settings: tuple[tuple[str, str], ...] = ()
        else:
            self._settings = _setting_options(synchronous_commit, statement_timeout, lock_timeout)

    async def __aenter__(self) -> None:
        tx = current_tx(self.using)
        if tx is not None:
            conn = tx.connection()
            self._token = None
            self._level = _Level()
            tx.levels.append(self._level)
            self._xact = conn.transaction()
            try:
                await _exec.guard(conn, self._xact.start, "SAVEPOINT", self.using)
                if self._settings:
                    await self._apply_settings(conn)
            except BaseException:
                tx.levels.pop()
                raise
            self._tx = tx
            return
        entry = pools.get(self.using)  # the open pool without get_pool()'s coroutine
        if entry is not None and entry[1] is asyncio.get_running_loop():
            pool = entry[0]
        else:
            pool = await get_pool(self.using)
        conn = await acquire(pool, self.using)
        try:
            self._xact = conn.transaction(
                isolation=self.isolation, readonly=self.readonly, deferrable=self.deferrable
            )
            await _exec.guard(conn, self._xact.start, "BEGIN", self.using)
            if self._settings:
                await self._apply_settings(conn)
        except BaseException:
            await pool.release(conn)
            raise
        self._conn = (pool, conn)
        self._tx = tx = _Tx(conn, self.using, asyncio.current_task())
        txs = dict(current_txs.get() or {})
        txs[self.using] = tx
        self._token = current_txs.set(txs)

    async def _apply_settings(self, conn: Any) -> None:
        args = [part for pair in self._settings for part in pair]
        await _exec.send(
            conn, _exec.OPS["execute"], _settings_sql(len(self._settings)), args, self.using, True
        )

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._token is None:
            await self._exit_savepoint(exc_type is not None)
            return
        tx, (pool, conn) = self._tx, self._conn
        cancelled: BaseException | None = None
        try:
            try:
                if exc_type is not None:
                    await _exec.guard(conn, self._xact.rollback, "ROLLBACK", self.using)
                else:  # to its end even if the task is cancelled meanwhile (re-raised below)
                    cancelled = await _to_the_end(
                        _exec.guard(conn, self._xact.commit, "COMMIT", self.using, in_tx=False)
                    )
            except BaseException:
                await _run_callbacks(tx.levels[0].on_rollback)
                raise
        finally:
            tx.active = False
            current_txs.reset(self._token)
            # Shielded or free of suspension points (see _pool.release), so
            # cancellation still returns the connection.
            await release(pool, conn)
        await _run_callbacks(tx.levels[0].on_rollback if exc_type else tx.levels[0].on_commit)
        if cancelled is not None:
            raise cancelled

    async def _exit_savepoint(self, failed: bool) -> None:
        tx, level = self._tx, self._level
        tx.levels.pop()
        conn = tx.conn
        if failed:
            await _exec.guard(conn, self._xact.rollback, "ROLLBACK TO SAVEPOINT", self.using)
            await _run_callbacks(level.on_rollback)
            return
        await _exec.guard(conn, self._xact.commit, "RELEASE SAVEPOINT", self.using)
        tx.levels[-1].on_commit.extend(level.on_commit)
        tx.levels[-1].on_rollback.extend(level.on_rollback)


async def _to_the_end(coro: Coroutine[Any, Any, Any]) -> BaseException | None:
    """Drive ``coro`` to completion inside the calling task, shielded from its cancellation.

    ``asyncio.shield`` would do, but it costs a Task (and two loop turns) on every
    COMMIT. Here the task waits on a private future chained to each future ``coro``
    waits on, so ``task.cancel()`` cancels only that private future: the driver's
    own await is never interrupted. Returns the cancellation that arrived meanwhile.
    """
    cancelled: BaseException | None = None
    loop = asyncio.get_running_loop()
    while True:
        try:
            awaited = coro.send(None)
        except StopIteration:
            return cancelled
        if awaited is None:  # a bare yield (sleep(0)): give the loop one turn
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                cancelled = exc
            continue
        awaited._asyncio_future_blocking = False
        while not awaited.done():
            relay = loop.create_future()
            awaited.add_done_callback(functools.partial(_relay_done, relay))
            try:
                await relay
            except asyncio.CancelledError as exc:
                cancelled = exc


def _relay_done(relay: asyncio.Future[None], _done: Any) -> None:
    if not relay.done():
        relay.set_result(None)


@asynccontextmanager
async def _acquire(source: str) -> AsyncIterator[Any]:
    """A pooled connection; returned to the pool even if the task is cancelled."""
    pool = await get_pool(source)
    conn = await acquire(pool, source)
    try:
        yield conn
    finally:
        # Pool.release shields itself from cancellation (asyncpg pool.py).
        await pool.release(conn)


async def _run_callbacks(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        result = callback()
        if inspect.isawaitable(result):
            await result


def transactional(
    fn: Callable[P, Awaitable[R]] | None = None,
    *,
    isolation: str | None = None,
    readonly: bool = False,
    using: str = PRIMARY,
) -> Any:
    """Decorator: run the coroutine function inside ``transaction(...)``."""

    def wrap(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            async with transaction(isolation=isolation, readonly=readonly, using=using):
                return await func(*args, **kwargs)

        return wrapper

    return wrap(fn) if fn is not None else wrap


async def retry_transaction(
    fn: Callable[[], Awaitable[R]],
    *,
    attempts: int = 5,
    isolation: str | None = "serializable",
    base_delay: float = 0.02,
    max_delay: float = 1.0,
    idempotent: bool = False,
    using: str = PRIMARY,
    **options: Any,
) -> R:
    """Run ``fn`` in a fresh transaction, retrying as :func:`luser_db.retry` decides
    (serialization failure, deadlock, lock timeout, connection lost before COMMIT).

    ``options`` go to ``transaction()``. Inside an enclosing transaction a retry
    cannot help (the outer one is already doomed), so ``fn`` then runs once, as is.
    """

    async def attempt() -> R:
        async with transaction(isolation=isolation, using=using, **options):
            return await fn()

    if in_transaction(using):
        return await fn()
    return await retry(
        attempt,
        attempts=attempts,
        backoff=full_jitter(base_delay, max_delay),
        idempotent=idempotent,
        using=using,
    )
