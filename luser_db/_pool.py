"""Connection pools per data source: created lazily, closed together, reset for tests.

A pool is built on first use from ``luser_config``'s database section (or from
``init(url=...)``), under a lock so that concurrent first uses create one pool.
After ``close()`` every use fails with DatabaseUnavailable until ``init()`` or
``reset()`` is called again.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import asyncpg

from luser_common import ConfigError

from ._datasource import PRIMARY, data_source_config, database_config, resolve_url
from ._json import RawJson, dumps_json, dumps_jsonb
from ._observe import configure_sql_log, reset_sql_log
from ._pgbouncer import (
    Mode,
    SessionStateRefused,
    check_prepared_statements_tracked,
    leaves_session_state,
    unique_name,
)
from ._sql import split_statements
from .errors import DB_ERRORS, PoolClosed, unavailable

__all__ = [
    "PoolSettings",
    "PoolStats",
    "acquire",
    "close",
    "connect_dedicated",
    "driver_connection",
    "get_pool",
    "init",
    "pool_stats",
    "release",
    "reset",
    "settings_for",
]


class LuserConnection(asyncpg.Connection):
    """asyncpg connection that remembers whether SQL may have changed session state.

    ``_luser_managed`` is set when luser_db itself acquired the connection; code that
    takes one straight from the pool (``get_pool().acquire()``) leaves it unset, and
    its release then always gets asyncpg's full reset.
    """

    _luser_dirty: bool = False
    _luser_managed: bool = False

    def mark_session_dirty(self, sql: str | None = None) -> None:
        """Note that ``sql`` (raw SQL about to run) may leave session state behind."""
        self._luser_dirty = True

    def get_reset_query(self) -> str:
        # asyncpg's reset (RESET ALL, UNLISTEN *, CLOSE ALL, advisory unlock) leaves
        # temporary tables behind; the next borrower must not see them.
        query: str = super().get_reset_query()
        return f"{query}\nDISCARD TEMP;" if query else "DISCARD TEMP;"


class PgBouncerConnection(LuserConnection):
    """A connection through PgBouncer in transaction pooling mode (see ``_pgbouncer``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # asyncpg wraps type introspection in set_config('jit', 'off', false) and a later
        # set_config back: two statements, so two servers here, one left with JIT off.
        self._server_caps = self._server_caps._replace(jit=False)  # type: ignore[has-type]

    def mark_session_dirty(self, sql: str | None = None) -> None:
        # Refused before it is sent: on a shared server it would leak to other clients.
        statement = leaves_session_state(sql) if sql is not None else None
        if statement is not None:
            raise SessionStateRefused(
                "经 PgBouncer 事务池连接时不能执行会改变会话状态的语句; 请在事务中用"
                " SET LOCAL / set_config(..., true), 或经 database.direct_url 直连",
                details={"statement": statement[:200]},
            )
        self._luser_dirty = True

    def _get_unique_id(self, prefix: str) -> str:
        # asyncpg numbers the statements it must name (cursors, prepare()) per process:
        # two processes' "__asyncpg_stmt_1__" collide on a server PgBouncer shares.
        return unique_name(prefix)


@dataclass(slots=True)
class PoolSettings:
    """Everything needed to open one pool; ``options`` go to ``asyncpg.create_pool``."""

    url: str | None
    min_size: int = 1
    max_size: int = 10
    acquire_timeout: float = 5.0
    pgbouncer: Mode = False
    direct_url: str | None = None  # straight to PostgreSQL, for LISTEN (None: url)
    fast_release: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    # name -> (pool, the event loop it belongs to): asyncpg pools are bound to one loop,
    # and a process may run several in turn (e.g. one per TestClient).
    pools: dict[str, tuple[asyncpg.Pool, asyncio.AbstractEventLoop]] = field(default_factory=dict)
    settings: dict[str, PoolSettings] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    locks: dict[tuple[str, asyncio.AbstractEventLoop], asyncio.Lock] = field(default_factory=dict)
    # Pools of other, still open loops, kept until their loop is used again or closes.
    parked: dict[tuple[str, asyncio.AbstractEventLoop], asyncpg.Pool] = field(default_factory=dict)
    closed: bool = False
    # Bumped by init() and reset(): a pool whose opening spanned one was opened with
    # settings that no longer hold, and is thrown away instead of kept.
    generation: int = 0


_state = _State()
# Read on every query: kept as module globals so the hot path is one dict lookup.
pools = _state.pools
acquire_timeouts = _state.timeouts


def settings_for(name: str) -> PoolSettings:
    """PoolSettings for data source ``name`` from the live config (URL resolved lazily)."""
    cfg = data_source_config(name)
    options: dict[str, Any] = {
        "timeout": cfg.connect_timeout,
        "command_timeout": cfg.command_timeout,
        "max_inactive_connection_lifetime": cfg.idle_timeout,
        "max_queries": cfg.max_lifetime or 2**62,
        "statement_cache_size": 0 if cfg.pgbouncer == "transaction" else cfg.statement_cache_size,
    }
    ssl = _ssl_option(cfg.ssl_mode, cfg.ssl_ca, cfg.ssl_cert, cfg.ssl_key)
    if ssl is not None:
        options["ssl"] = ssl
    return PoolSettings(
        url=None,
        min_size=min(cfg.min_connections, cfg.max_connections),
        max_size=cfg.max_connections,
        acquire_timeout=cfg.acquire_timeout,
        pgbouncer=cfg.pgbouncer,
        direct_url=cfg.direct_url.get_secret_value() if cfg.direct_url else None,
        options=options,
    )


def _ssl_option(mode: str | None, ca: str | None, cert: str | None, key: str | None) -> Any:
    if not (ca or cert):
        return mode
    import ssl

    context = ssl.create_default_context(cafile=ca)
    if mode in ("require", "prefer", "allow"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE if not ca else ssl.CERT_REQUIRED
    if cert:
        context.load_cert_chain(cert, key)
    return context


def init(url: str | None = None, *, name: str = PRIMARY, **pool_options: Any) -> None:
    """Set data source ``name`` explicitly (URL and/or pool options); the pool opens on first use.

    Accepted options: ``min_size``, ``max_size``, ``acquire_timeout``, ``pgbouncer``
    (``False``, ``"transaction"`` or ``True``, ``"transaction_prepared"``), ``direct_url``,
    ``fast_release`` and any ``asyncpg.create_pool`` keyword. A pool already open for
    ``name`` is closed in the background.
    """
    try:
        base = settings_for(name)
    except Exception:  # no such source in config: start from defaults
        base = PoolSettings(url=None)
    base.url = url
    if url is not None:  # an explicit URL: the config's direct_url belongs to another one
        base.direct_url = None
    for key in ("min_size", "max_size", "acquire_timeout", "direct_url", "fast_release"):
        if key in pool_options:
            setattr(base, key, pool_options.pop(key))
    if "pgbouncer" in pool_options:
        base.pgbouncer = _mode(pool_options.pop("pgbouncer"))
    base.options.update(pool_options)
    if base.pgbouncer == "transaction":
        base.options["statement_cache_size"] = 0
    _state.settings[name] = base
    _state.closed = False
    _state.generation += 1
    for hook in reset_hooks:
        hook()
    entry = pools.pop(name, None)
    if entry is not None:
        _discard(*entry)


def _mode(value: Any) -> Mode:
    if value is True or value == "transaction":
        return "transaction"
    if value == "transaction_prepared":
        return "transaction_prepared"
    if value is False or value is None:
        return False
    raise ConfigError(
        f"pgbouncer 只能是 False, 'transaction' 或 'transaction_prepared', 不能是 {value!r}",
        field="pgbouncer",
    )


def _discard(pool: asyncpg.Pool, loop: asyncio.AbstractEventLoop) -> None:
    """Let go of a pool we will not await: close it on its own loop, or cut it off."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is loop:
            task = loop.create_task(pool.close())
            _background.add(task)
            task.add_done_callback(_background.discard)
        elif loop.is_running():
            loop.call_soon_threadsafe(pool.terminate)  # its transports belong to that loop
        elif not loop.is_closed():
            pool.terminate()
    except RuntimeError:  # the loop closed meanwhile: its sockets are gone with it
        pass


_background: set[asyncio.Task[Any]] = set()


# Called by reset() and init(): state derived from the sources' settings (replica routing).
reset_hooks: list[Callable[[], None]] = []


def reset() -> None:
    """Forget every pool and explicit setting without closing them (tests: close() first)."""
    reset_sql_log()
    for hook in reset_hooks:
        hook()
    pools.clear()
    acquire_timeouts.clear()
    _state.settings.clear()
    _state.locks.clear()
    _state.parked.clear()
    _state.closed = False
    _state.generation += 1


# Run first by close(): what holds connections outside the pools (the query cache's listener).
close_hooks: list[Any] = []


async def close() -> None:
    """Close every pool; later use raises DatabaseUnavailable until init()/reset()."""
    for hook in close_hooks:
        await hook()
    _state.closed = True
    _state.generation += 1  # a pool still opening now is discarded, not installed
    items = [*pools.values(), *((pool, loop) for (_, loop), pool in _state.parked.items())]
    pools.clear()
    _state.parked.clear()
    acquire_timeouts.clear()
    running = asyncio.get_running_loop()
    for pool, loop in items:
        if loop is not running:
            _discard(pool, loop)
            continue
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except DB_ERRORS:  # includes the wait_for TimeoutError
            pool.terminate()


async def get_pool(name: str = PRIMARY) -> asyncpg.Pool:
    """The pool of data source ``name`` for the running event loop, opened on first use."""
    loop = asyncio.get_running_loop()
    entry = pools.get(name)
    if entry is not None and entry[1] is loop:
        return entry[0]
    if _state.closed:
        raise PoolClosed()
    lock = _state.locks.setdefault((name, loop), asyncio.Lock())
    async with lock:
        while True:
            entry = pools.get(name)
            if entry is not None and entry[1] is loop:
                return entry[0]
            if _state.closed:
                raise PoolClosed()
            if entry is not None:  # the current pool belongs to another loop: park it
                _park(name, *entry)
            generation = _state.generation
            pool = _state.parked.pop((name, loop), None) or await _open(name)
            if generation == _state.generation:
                pools[name] = (pool, loop)
                return pool
            # close(), init() or reset() ran while it opened (a background task's first query racing
            # a test that repoints the ORM): its URL may be the old one. Open again.
            _discard(pool, loop)


def _park(name: str, pool: asyncpg.Pool, loop: asyncio.AbstractEventLoop) -> None:
    # Pools of loops still alive stay usable for them; those of closed loops are dropped.
    for (parked_name, parked_loop), parked in list(_state.parked.items()):
        if parked_loop.is_closed():
            del _state.parked[(parked_name, parked_loop)]
            _discard(parked, parked_loop)
    if loop.is_closed():
        _discard(pool, loop)
    else:
        _state.parked[(name, loop)] = pool


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One data source's pool, now: connections open, lent out, idle, and tasks waiting."""

    source: str
    size: int
    in_use: int
    idle: int
    waiting: int
    max_size: int


_waiting: dict[str, int] = {}


def pool_stats() -> list[PoolStats]:
    """A snapshot of every open pool (for metrics: pool size, in use, waiting)."""
    out = []
    for name, (pool, _loop) in list(pools.items()):
        size, idle = pool.get_size(), pool.get_idle_size()
        out.append(
            PoolStats(name, size, size - idle, idle, _waiting.get(name, 0), pool.get_max_size())
        )
    return out


async def acquire(pool: asyncpg.Pool, source: str) -> Any:
    """A connection from ``pool``; DatabaseUnavailable after the acquire timeout."""
    try:
        if pool._queue.empty():  # type: ignore[attr-defined]
            # The slow path (no idle connection): count the waiters for pool_stats().
            _waiting[source] = _waiting.get(source, 0) + 1
            try:
                async with asyncio.timeout(acquire_timeouts.get(source)):
                    conn = await pool.acquire()
            finally:
                _waiting[source] -= 1
        elif IN_PLACE_POOL and not pool._closing:  # type: ignore[attr-defined]
            # A free connection is waiting: skip arming a timer (asyncpg bounds connecting
            # itself with connect_timeout); the timer would cost more than the acquire.
            holder = _take_idle(pool)
            try:
                conn = await holder.acquire()
            except BaseException:
                _put_back(pool, holder)
                raise
            holder._timeout = None
        else:
            conn = await pool.acquire()
    except DB_ERRORS as exc:
        raise unavailable(exc) from exc
    conn._con._luser_managed = True  # type: ignore[attr-defined]  # the proxied connection
    return conn


# asyncpg.connect keywords among a pool's options (the rest are pool-only).
_CONNECT_OPTIONS = ("timeout", "command_timeout", "statement_cache_size", "ssl", "server_settings")


async def connect_dedicated(name: str = PRIMARY) -> asyncpg.Connection:
    """A connection of data source ``name`` outside the pool (LISTEN holds one for good:
    taking it from the pool would shrink the pool and block ``close()``), to its
    ``direct_url`` when one is set: session state such as LISTEN needs PostgreSQL
    itself, not a PgBouncer in transaction mode."""
    if _state.closed:
        raise PoolClosed()
    settings = settings_of(name)
    url = settings.direct_url or settings.url or await asyncio.to_thread(resolve_url, name)
    options = {k: v for k, v in settings.options.items() if k in _CONNECT_OPTIONS}
    try:
        conn: asyncpg.Connection = await asyncpg.connect(url, **options)
    except DB_ERRORS as exc:
        raise unavailable(exc) from exc
    return conn


def settings_of(name: str = PRIMARY) -> PoolSettings:
    """The settings data source ``name`` uses: those given to ``init()``, else the config's."""
    return _state.settings.get(name) or settings_for(name)


async def _open(name: str) -> asyncpg.Pool:
    settings = settings_of(name)
    # resolve_url may start the embedded server (blocking): keep the loop free meanwhile.
    url = settings.url or await asyncio.to_thread(resolve_url, name)
    options = dict(settings.options)
    connection_class: type[LuserConnection] = LuserConnection
    if settings.pgbouncer:
        # asyncpg's reset (RESET ALL, pg_advisory_unlock_all() ...) would run on whichever
        # server PgBouncer picks, maybe another client's, and cost a round trip per call.
        options["reset"] = _pgbouncer_reset
        connection_class = PgBouncerConnection
    elif settings.fast_release:
        options["reset"] = _fast_reset
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=settings.min_size,
            max_size=settings.max_size,
            init=_init_connection,
            connection_class=connection_class,
            **options,
        )
    except DB_ERRORS as exc:
        raise unavailable(exc) from exc
    assert pool is not None
    if settings.pgbouncer == "transaction_prepared":
        await _check_prepared_statements(pool, name)
    acquire_timeouts[name] = settings.acquire_timeout
    if name == PRIMARY:
        _apply_log_settings()
    return pool


async def _check_prepared_statements(pool: asyncpg.Pool, name: str) -> None:
    # Once per pool: a PgBouncer that does not track prepared statements would make
    # every cached statement fail at random later, on whichever server it lands.
    try:
        async with pool.acquire() as conn:
            await check_prepared_statements_tracked(conn, name)
    except DB_ERRORS as exc:
        pool.terminate()
        raise unavailable(exc) from exc
    except BaseException:
        pool.terminate()
        raise


def _apply_log_settings() -> None:
    """``database.slow_query_ms`` / ``log_parameters`` from the live config, read when
    the primary pool opens (``luser_db.configure_sql_log`` sets them explicitly)."""
    try:
        cfg = database_config()
    except Exception:  # no usable config (init(url) without files): keep what is set
        return
    configure_sql_log(
        slow_query_ms=cfg.slow_query_ms, log_parameters=cfg.log_parameters, from_config=True
    )


@asynccontextmanager
async def pooled_connection(
    source: str = PRIMARY, *, stateless: bool = False
) -> AsyncIterator[Any]:
    """A bare pooled asyncpg connection, outside the executor and any transaction.

    Only for the open API's ``_db.py`` until it moves onto ``luser_db.connection()``
    (which joins transactions and translates errors); not exported. ``stateless``
    as in ``luser_db.connection``.
    """
    pool = await get_pool(source)
    conn = await acquire(pool, source)
    if not stateless:
        conn.mark_session_dirty()
    try:
        yield conn
    finally:
        await release(pool, conn)  # a cancelled task still returns it (see release())


async def release(pool: asyncpg.Pool, conn: Any) -> None:
    """``pool.release(conn)``, without asyncio.shield's Task when no I/O is needed.

    asyncpg's release wraps the holder's release in ``asyncio.shield``: one Task and
    an extra loop turn per statement, there only so that cancellation cannot stop a
    release halfway through its reset round trip. When :func:`_fast_reset` will send
    nothing (a luser-managed, clean connection, not in a transaction, no pending
    cancellation, not due to be closed), the holder's release runs to its end without
    suspending, so it is driven here in place: a task cannot be cancelled between
    two statements that never yield. Anything else takes asyncpg's own path.
    """
    con = getattr(conn, "_con", None)
    holder = getattr(conn, "_holder", None)
    if (
        con is None
        or holder is None
        or holder._pool is not pool
        or pool._reset is not _fast_reset
        or not _releases_locally(con, holder)
    ):
        await pool.release(conn)
        return
    pool._check_init()
    con._on_release()  # what Pool.release does before handing over to the holder
    if IN_PLACE_POOL:
        _release_in_place(holder, con)
        return
    coro = holder.release(holder._timeout)
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    # Not expected (the checks above say nothing awaits); finish it shielded, as asyncpg does.
    await asyncio.shield(asyncio.ensure_future(_resume(coro, yielded)))


def _release_in_place(holder: Any, con: Any) -> None:
    """``PoolConnectionHolder.release`` for a connection :func:`_releases_locally`
    approved, without its coroutines and its ``asyncio.timeout`` (a third of a
    statement's pool overhead): the same steps, none of which can suspend.

    asyncpg internals, used only when :data:`IN_PLACE_POOL` found every one of
    them (tests/luser_db/test_pool.py fails when an asyncpg upgrade removes one);
    otherwise :func:`release` drives asyncpg's own ``holder.release``. The same goes
    for :func:`_take_idle` in :func:`acquire`.
    """
    holder._timeout = None
    con._listeners.clear()  # Connection._reset's steps: no ROLLBACK is due
    con._log_listeners.clear()
    con._luser_managed = con._luser_dirty = False  # what _fast_reset would do
    holder._release()  # back into the pool's queue, the proxy detached
    holder._setup_inactive_callback()


def driver_connection(conn: Any) -> Any:
    """The asyncpg connection behind a pool's proxy (``conn`` itself if it is none):
    the proxy forwards every method call through one more Python frame. Only for
    code that knows the proxy is still lent out (an open transaction's)."""
    con = getattr(conn, "_con", None)
    return conn if con is None else con


def _take_idle(pool: Any) -> Any:
    """The idle holder ``Pool._acquire`` would take (the caller saw the queue non-empty):
    ``pool.acquire()`` without its context object and two coroutines. The caller
    awaits ``holder.acquire()`` and sets ``holder._timeout`` as asyncpg does."""
    pool._check_init()
    return pool._queue.get_nowait()


def _put_back(pool: Any, holder: Any) -> None:
    """What ``Pool._acquire`` does when ``holder.acquire()`` failed."""
    pool._queue.put_nowait(holder)
    pool._schedule_min_size_maintenance()


def _has_pool_internals() -> bool:
    from asyncpg.pool import Pool, PoolConnectionHolder

    holder_parts = ("acquire", "_release", "_setup_inactive_callback", "_timeout", "_generation")
    pool_parts = ("_queue", "_closing", "_check_init", "_schedule_min_size_maintenance", "_reset")
    connection_parts = ("_listeners", "_log_listeners", "_on_release", "_top_xact", "_protocol")
    return (
        all(hasattr(PoolConnectionHolder, n) for n in holder_parts)
        and all(hasattr(Pool, n) for n in pool_parts)
        and all(hasattr(asyncpg.Connection, n) for n in connection_parts)
    )


# Whether acquire() and release() may run asyncpg's pool steps themselves (see
# _take_idle and _release_in_place); otherwise they go through Pool.acquire/release.
IN_PLACE_POOL = _has_pool_internals()


def _releases_locally(con: Any, holder: Any) -> bool:
    """Whether releasing ``con`` back to its pool costs no round trip (see release())."""
    protocol = con._protocol
    return (
        con._luser_managed
        and not con._luser_dirty
        and con._top_xact is None
        and not protocol.is_in_transaction()
        and not protocol._is_cancelling()
        and not con.is_closed()
        and protocol.queries_count < holder._max_queries
        and holder._generation == holder._pool._generation
    )


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Any:
    """Continue ``coro``, which already suspended on ``yielded``, inside a Task."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _fast_reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset costs a round trip (RESET ALL, UNLISTEN *, ...) on every
    # release. Queries the ORM builds leave no session state, so that round trip runs
    # only when the connection is mid-transaction, ran raw SQL that might have set
    # some, or was used outside luser_db (we cannot know what that code did).
    managed = getattr(conn, "_luser_managed", False)
    if not managed or conn.is_in_transaction() or getattr(conn, "_luser_dirty", False):
        await conn.reset()
    if isinstance(conn, LuserConnection):
        conn._luser_managed = conn._luser_dirty = False


async def _pgbouncer_reset(conn: asyncpg.Connection) -> None:
    # Session state is refused up front (PgBouncerConnection), so all a release must
    # undo is an open transaction: its server is still this client's until it ends.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so json/jsonb also work with COPY (copy_records_to_table is binary);
    # jsonb is decoded lazily (see _json.py).
    await conn.set_type_codec(
        "jsonb", encoder=dumps_jsonb, decoder=RawJson, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=dumps_json, decoder=json.loads, schema="pg_catalog", format="binary"
    )


_SAFE_STARTS = ("select", "insert", "update", "delete", "with", "values", "table")
_SESSION_HINTS = ("set_config", "pg_advisory_lock", "pg_try_advisory_lock", " into temp")


@lru_cache(maxsize=4096)
def touches_session(sql: str) -> bool:
    """Whether raw ``sql`` might leave session state behind (SET, LISTEN, advisory locks,
    temporary tables ...). Every statement of a multi-statement string is checked."""
    if ";" in sql:
        return any(_statement_touches_session(part) for part in split_statements(sql))
    return _statement_touches_session(sql)


def _statement_touches_session(sql: str) -> bool:
    head = sql.lstrip(" \t\r\n(").lower()
    if not head.startswith(_SAFE_STARTS):
        return True
    return any(hint in head for hint in _SESSION_HINTS)
