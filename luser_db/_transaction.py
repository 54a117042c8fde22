"""Context-variable transactions: code inside ``async with transaction()`` joins it.

One ContextVar maps data-source name → the open ``_Tx``. The outermost block
acquires a pooled connection and sends BEGIN; nested blocks send SAVEPOINT. The
statements go through the executor's door as plain ``execute`` calls: asyncpg's
``Transaction`` object would add a Python object, two guard wrappers and state
checks around each of them on every unit of work, and the connection's own
transaction status (from the server's ReadyForQuery) is what the pool's release
checks anyway.

Tasks created inside a block inherit the context, so ``asyncio.gather`` would
make them share one connection. ``_Tx.connection()`` checks the calling task
and raises a clear error instead of asyncpg's "another operation is in progress".
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from luser_common import InternalServerError, ValidationError

from . import _exec
from ._context import current_txs, running_task
from ._datasource import PRIMARY
from ._pool import acquire, driver_connection, get_pool, pools, release
from ._retry import full_jitter, retry
from .errors import SharedConnectionError

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


class _Level:
    """One block: the outermost transaction or a savepoint, with its callbacks and the
    tables its statements wrote (announced to the query cache after the commit)."""

    __slots__ = ("on_commit", "on_rollback", "written")

    def __init__(self) -> None:
        self.on_commit: list[Callback] = []
        self.on_rollback: list[Callback] = []
        self.written: set[str] = set()


class _Tx:
    """The open transaction on one data source: its connection, owner task and levels."""

    __slots__ = ("active", "busy", "conn", "driver", "levels", "owner", "source")

    def __init__(self, conn: Any, source: str, owner: asyncio.Task[Any] | None) -> None:
        self.conn = conn
        # What the executor sends statements on: the driver's connection itself, not
        # the pool's proxy (whose every method call is one more Python frame).
        self.driver = driver_connection(conn)
        self.source = source
        self.owner = owner
        self.levels: list[_Level] = [_Level()]
        self.busy = False
        # False once the block ends: a task spawned inside it still carries this _Tx
        # in its context, and must then go to the pool like any other code.
        self.active = True

    def connection(self) -> Any:
        owner = self.owner
        if (
            owner is not None and running_task(asyncio.get_running_loop()) is not owner
        ) or self.busy:
            raise SharedConnectionError()
        return self.conn

    def wrote(self, tables: Iterable[str]) -> None:
        """Note tables written in the current block: the query cache evicts what read
        them once the transaction commits (dropped if the block rolls back)."""
        self.levels[-1].written.update(tables)


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
        "_savepoint",
        "_settings",
        "_token",
        "_tx",
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
        txs = current_txs.get()  # current_tx(), inlined
        tx = None if txs is None else txs.get(self.using)
        if tx is not None and tx.active:
            tx.connection()  # the owner-task check
            conn = tx.driver
            self._token = None
            self._level = _Level()
            # Named by depth: a sibling block reuses the name, and PostgreSQL's newest
            # savepoint of that name is the one RELEASE / ROLLBACK TO then find.
            self._savepoint = f"luser_savepoint_{len(tx.levels)}"
            tx.levels.append(self._level)
            try:
                await _exec.control(conn, f"SAVEPOINT {self._savepoint}", "SAVEPOINT", self.using)
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
        loop = asyncio.get_running_loop()
        tx = _Tx(conn, self.using, running_task(loop))
        try:
            begin = _begin_sql(self.isolation, self.readonly, self.deferrable)
            await _exec.control(tx.driver, begin, "BEGIN", self.using)
            if self._settings:
                await self._apply_settings(tx.driver)
        except BaseException:
            await pool.release(conn)  # mid-transaction: asyncpg's reset rolls it back
            raise
        self._conn = (pool, conn)
        self._tx = tx
        txs = {self.using: tx} if txs is None else {**txs, self.using: tx}
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
                    await _exec.control(tx.driver, "ROLLBACK", "ROLLBACK", self.using)
                else:  # to its end even if the task is cancelled meanwhile (re-raised below)
                    cancelled = await _to_the_end(
                        _exec.control(tx.driver, "COMMIT", "COMMIT", self.using, in_tx=False)
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
        level = tx.levels[0]
        if exc_type is not None:
            if level.on_rollback:
                await _run_callbacks(level.on_rollback)
        else:
            if level.written and _exec.committed is not None:
                await _exec.committed(level.written)  # no transaction now: at once
            if level.on_commit:
                await _run_callbacks(level.on_commit)
        if cancelled is not None:
            raise cancelled

    async def _exit_savepoint(self, failed: bool) -> None:
        tx, level, name = self._tx, self._level, self._savepoint
        tx.levels.pop()
        conn = tx.driver
        if failed:
            sql = f"ROLLBACK TO SAVEPOINT {name}"
            await _exec.control(conn, sql, "ROLLBACK TO SAVEPOINT", self.using)
            await _run_callbacks(level.on_rollback)
            return
        await _exec.control(conn, f"RELEASE SAVEPOINT {name}", "RELEASE SAVEPOINT", self.using)
        outer = tx.levels[-1]
        outer.on_commit.extend(level.on_commit)
        outer.on_rollback.extend(level.on_rollback)
        outer.written.update(level.written)


@functools.lru_cache(maxsize=32)
def _begin_sql(isolation: str | None, readonly: bool, deferrable: bool) -> str:
    """BEGIN with the block's options, as asyncpg's Transaction.start spelled it."""
    sql = "BEGIN"
    if isolation is not None:
        sql += " ISOLATION LEVEL " + isolation.replace("_", " ").upper()
    if readonly:
        sql += " READ ONLY"
    if deferrable:
        sql += " DEFERRABLE"
    return sql


async def _to_the_end(coro: Coroutine[Any, Any, Any]) -> BaseException | None:
    """Drive ``coro`` to completion inside the calling task, shielded from its cancellation.

    ``asyncio.shield`` would do, but it costs a Task (and two loop turns) on every
    COMMIT. Here the task waits on each future ``coro`` waits on through
    :class:`_Uncancellable`, whose ``cancel()`` refuses: ``task.cancel()`` then only
    marks the task, which gets its CancelledError once that future is done, here and
    not inside ``coro``. Returns the cancellation that arrived meanwhile.
    """
    cancelled: BaseException | None = None
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
        try:
            await _Uncancellable(awaited)
        except asyncio.CancelledError as exc:
            cancelled = exc


class _Uncancellable:
    """A future-like view of ``future`` (asyncio's documented duck type: the
    ``_asyncio_future_blocking`` flag, ``get_loop``, ``add_done_callback``, ``result``)
    that a task can wait on but not cancel.

    ``Task.cancel()`` calls the awaited object's ``cancel()``; when that returns False
    the task only records the request and raises CancelledError at its next step,
    which comes when ``future`` is done. So the wait costs no extra Task or loop turn
    (asyncio.shield needs both), and the driver's future is never cancelled.
    """

    __slots__ = ("_asyncio_future_blocking", "_future", "_wake")

    def __init__(self, future: Any) -> None:
        self._future = future
        self._asyncio_future_blocking = False
        self._wake: Any = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self._future.get_loop()
        return loop

    def add_done_callback(self, fn: Callable[[Any], Any], *, context: Any = None) -> None:
        self._wake = fn
        self._future.add_done_callback(self._done, context=context)

    def _done(self, _future: Any) -> None:
        self._wake(self)  # the task reads result() on this view: never the future's error

    def cancel(self, msg: Any = None) -> bool:
        return False

    def done(self) -> bool:
        done: bool = self._future.done()
        return done

    def result(self) -> None:
        return None

    def __await__(self) -> Generator[Any, None, None]:
        if not self._future.done():
            self._asyncio_future_blocking = True
            yield self


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
