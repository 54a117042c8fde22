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
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import asyncpg

from luser_common import Conflict, InternalServerError, ValidationError

from ._datasource import PRIMARY
from ._pool import acquire, get_pool
from .errors import DB_ERRORS, is_retryable, translate

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

_current: ContextVar[dict[str, _Tx] | None] = ContextVar("luser_db_transaction", default=None)


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
    txs = _current.get()
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


class transaction:
    """A transaction (or, nested, a savepoint) that every query inside joins.

    A clean exit commits, an exception rolls back and propagates. ``isolation``
    is one of read_committed, repeatable_read, serializable, read_uncommitted;
    the options apply to the outermost block. A plain class rather than an
    ``asynccontextmanager``: this runs around every unit of work.
    """

    __slots__ = (
        "_conn",
        "_level",
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
        using: str = PRIMARY,
    ) -> None:
        _check_isolation(isolation)
        self.isolation = isolation
        self.readonly = readonly
        self.deferrable = deferrable
        self.using = using

    async def __aenter__(self) -> None:
        tx = current_tx(self.using)
        if tx is not None:
            conn = tx.connection()
            self._token = None
            self._level = _Level()
            tx.levels.append(self._level)
            self._xact = conn.transaction()
            try:
                await _finish(self._xact.start)
            except BaseException:
                tx.levels.pop()
                raise
            self._tx = tx
            return
        pool = await get_pool(self.using)
        conn = await acquire(pool, self.using)
        try:
            self._xact = conn.transaction(
                isolation=self.isolation, readonly=self.readonly, deferrable=self.deferrable
            )
            await _finish(self._xact.start)
        except BaseException:
            await pool.release(conn)
            raise
        self._conn = (pool, conn)
        self._tx = tx = _Tx(conn, self.using, asyncio.current_task())
        txs = dict(_current.get() or {})
        txs[self.using] = tx
        self._token = _current.set(txs)

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._token is None:
            await self._exit_savepoint(exc_type is not None)
            return
        tx, (pool, conn) = self._tx, self._conn
        try:
            try:
                await _finish(self._xact.rollback if exc_type is not None else self._xact.commit)
            except BaseException:
                await _run_callbacks(tx.levels[0].on_rollback)
                raise
        finally:
            tx.active = False
            _current.reset(self._token)
            # Pool.release shields itself, so cancellation still returns the connection.
            await pool.release(conn)
        await _run_callbacks(tx.levels[0].on_rollback if exc_type else tx.levels[0].on_commit)

    async def _exit_savepoint(self, failed: bool) -> None:
        tx, level = self._tx, self._level
        tx.levels.pop()
        if failed:
            await _finish(self._xact.rollback)
            await _run_callbacks(level.on_rollback)
            return
        await _finish(self._xact.commit)
        tx.levels[-1].on_commit.extend(level.on_commit)
        tx.levels[-1].on_rollback.extend(level.on_rollback)


async def _finish(step: Callable[[], Awaitable[None]]) -> None:
    try:
        await step()
    except DB_ERRORS as exc:
        raise translate(exc) from exc


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
    using: str = PRIMARY,
) -> R:
    """Run ``fn`` in a fresh transaction, retrying on serialization failure or deadlock.

    Backoff is exponential with full jitter. Inside an enclosing transaction a retry
    cannot help (the outer one is already doomed), so ``fn`` then runs once, as is.
    """
    if in_transaction(using):
        return await fn()
    for attempt in range(1, attempts + 1):
        try:
            async with transaction(isolation=isolation, using=using):
                return await fn()
        except (Conflict, asyncpg.PostgresError) as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(0, delay))
    raise AssertionError("unreachable")  # pragma: no cover
