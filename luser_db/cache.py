"""The query cache: JFinal's ``findByCache`` with invalidation JFinal lacks.

``Model.query()...cache("hot_videos", ttl=60).all()`` (also ``first``, ``count``,
``paginate``) and ``Db.find_by_cache`` / ``Db.paginate_by_cache`` keep a result until
its time-to-live runs out **or any table it read is written through luser_db**:
the executor sees every statement, parses the tables a write targets
(:mod:`luser_db._cache_tables`) and, after the write commits, bumps those tables'
generation numbers, which every entry carries (:mod:`luser_db._cache_store`).

Across processes: with the ``memory`` backend each write is announced with NOTIFY
on :data:`CHANNEL` after its commit, and every process LISTENs; while a process's
listener is not connected its cache is bypassed (and it is cleared on reconnect),
because it could miss announcements. With the ``redis`` backend the generations
live in Redis, shared by all. When the store fails (Redis down), calls run as plain
queries: counted in :func:`stats` ``errors``, logged once per outage.

Inside ``transaction()`` cache calls are plain queries: a transaction must see its
own writes, and what it reads may never commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, TypeVar

from luser_common import ValidationError

from . import _exec, _pool
from ._cache_store import MemoryStore, RedisStore, Store, portable
from ._cache_tables import ALL, normalize, read_tables, write_tables
from ._datasource import PRIMARY
from ._transaction import current_tx

__all__ = [
    "CHANNEL",
    "MAX_KEY_BYTES",
    "CacheSettings",
    "CacheStats",
    "cached",
    "clear",
    "close",
    "configure",
    "invalidate",
    "key_for",
    "reset",
    "settings",
    "settings_from",
    "stats",
    "tables_of",
]

log = logging.getLogger("luser_db.cache")

CHANNEL = "luser_db_cache"
MAX_KEY_BYTES = 250  # longer keys are replaced by their SHA-256 (memcached's limit, kept)
MAX_TTL = 30 * 86400
# After a cross-process NOTIFY, writes wait this long to be announced together (see
# _queue_broadcast): other processes may serve a copy this much longer.
NOTIFY_INTERVAL = 0.02
RETRY_SECONDS = 1.0  # after a store failure, calls bypass it this long before trying again
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
T = TypeVar("T")


@dataclass(frozen=True)
class CacheSettings:
    """What ``[cache]`` configures; :func:`configure` overrides any of it."""

    enabled: bool = True
    backend: str = "memory"
    url: str | None = None  # redis URL; None -> [redis] url
    default_ttl: float = 300.0
    max_entries: int = 10000
    key_prefix: str = "luser:cache:"  # [redis] key_prefix + [cache] key_prefix
    notify: bool = True
    redis_timeout: float = 2.0


@dataclass(frozen=True)
class CacheStats:
    """Counters since start (or :func:`reset`): per cache name for hits and misses."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    evictions: int = 0  # entries dropped: stale, expired or pushed out of the LRU
    invalidations: int = 0  # committed writes announced (local or received)
    errors: int = 0  # calls that bypassed the cache because the store or listener failed


class _State:
    def __init__(self) -> None:
        self.settings: CacheSettings | None = None
        self.store: Store | None = None
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.invalidations = 0
        self.errors = 0
        self.evictions_before = 0  # of stores replaced by configure()
        self.failing = False  # an outage is being logged; logged again after recovery
        self.retry_at = 0.0  # during an outage the store is tried again only from then
        self.pending: set[str] = set()  # bumps the store refused (Redis down), retried
        self.sender = uuid.uuid4().hex[:16]
        self.listeners: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = {}
        self.outgoing: set[str] = set()  # tables written, not yet announced to others
        self.sending: asyncio.Task[None] | None = None  # the one announcing them
        # The end of the quiet interval after the last NOTIFY, and the timer that sends
        # what was written during it, each with the event loop it belongs to.
        self.quiet: tuple[asyncio.AbstractEventLoop, float] | None = None
        self.timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None


_state = _State()


# -- settings -----------------------------------------------------------------------


def _from_config() -> CacheSettings:
    from luser_config import get_config, is_initialized, load_config

    try:
        cfg = get_config() if is_initialized() else load_config()
    except Exception:  # no usable config (luser_db.init(url) alone): the defaults
        return CacheSettings()
    return settings_from(cfg)


def settings_from(cfg: Any) -> CacheSettings:
    """CacheSettings from an ``Settings``'s ``[cache]`` and ``[redis]`` sections."""
    c, r = cfg.cache, cfg.redis
    # cache.url, else the service's Redis with its password and db applied.
    url = c.url.get_secret_value() if c.url is not None else r.connection_url()
    return CacheSettings(
        enabled=c.enabled,
        backend=c.backend,
        url=url,
        default_ttl=float(c.default_ttl_seconds),
        max_entries=c.max_entries,
        key_prefix=r.key_prefix + c.key_prefix,
        notify=c.notify,
        redis_timeout=min(r.connect_timeout, r.command_timeout),
    )


def settings() -> CacheSettings:
    """The settings in force (read from luser_config on first use)."""
    current = _state.settings
    if current is None:
        current = _apply(_from_config())
    return current


def configure(**changes: Any) -> CacheSettings:
    """Override settings (``enabled``, ``backend``, ``url``, ``default_ttl``, ``max_entries``,
    ``key_prefix``, ``notify``); entries held so far are dropped."""
    unknown = set(changes) - set(CacheSettings.__dataclass_fields__)
    if unknown:
        raise ValidationError(f"未知的缓存设置: {', '.join(sorted(unknown))}", field="cache")
    return _apply(replace(settings(), **changes))


def _apply(new: CacheSettings) -> CacheSettings:
    if new.backend not in ("memory", "redis"):
        raise ValidationError("cache.backend 只能是 memory 或 redis", field="cache.backend")
    if new.backend == "redis" and not new.url:
        raise ValidationError(
            "cache.backend = redis 需要 cache.url 或 redis.url", field="cache.url"
        )
    old = _state.store
    if old is not None:
        _state.evictions_before += old.evictions
    _state.settings = new
    _state.store = (
        MemoryStore(new.max_entries)
        if new.backend == "memory"
        else RedisStore(new.url or "", new.key_prefix, new.redis_timeout)
    )
    _state.pending.clear()
    # The executor's hooks cost nothing while the cache is off.
    _exec.written_tables = write_tables if new.enabled else None
    _exec.wrote = after_write if new.enabled else None
    _exec.committed = _announce if new.enabled else None
    return new


def _bootstrap(sql: str) -> frozenset[str]:
    """The executor's first write check: reads the settings, which install the real
    hooks (or none when the cache is off). A process that only writes must still
    announce its writes to the processes that cache."""
    return write_tables(sql) if settings().enabled else frozenset()


def _install_bootstrap() -> None:
    _exec.written_tables = _bootstrap
    _exec.wrote = after_write
    _exec.committed = _announce


def reset() -> None:
    """Forget settings, entries and counters; the next use re-reads the config."""
    global _state
    listeners = _state.listeners
    _state = _State()
    _state.listeners = listeners  # still running: close() stops them
    _install_bootstrap()


def stats() -> CacheStats:
    store = _state.store
    return CacheStats(
        hits=dict(_state.hits),
        misses=dict(_state.misses),
        evictions=_state.evictions_before + (store.evictions if store is not None else 0),
        invalidations=_state.invalidations,
        errors=_state.errors,
    )


# -- keys ---------------------------------------------------------------------------


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            "缓存名必须以字母开头, 只含字母、数字、_ . -, 最长 64 个字符", field="cache_name"
        )
    return name


def check_ttl(ttl: Any) -> float:
    if ttl is None:
        return settings().default_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL:
        raise ValidationError(f"缓存时间 ttl 必须在 0 到 {MAX_TTL} 秒之间", field="ttl")
    return float(ttl)


def key_for(name: str, key: str | None, *parts: Any) -> str:
    """The entry key: ``name:key:digest-of-parts``. A ``key`` over :data:`MAX_KEY_BYTES`
    bytes is replaced by ``#`` + its SHA-256; the digest of the SQL and parameters is
    always added, so one key can never return another query's result."""
    digest = _digest(repr(parts))  # by repr: 1, 1.0 and True are equal, not the same key
    if key is None:
        return f"{name}:{digest}"
    if not isinstance(key, str):
        raise ValidationError("缓存 key 必须是字符串", field="key")
    if len(key.encode()) > MAX_KEY_BYTES:
        key = "#" + hashlib.sha256(key.encode()).hexdigest()
    return f"{name}:{key}:{digest}"


def tables_of(sql: str, declared: Iterable[str] | None = None) -> tuple[str, ...]:
    """The tables a cached read depends on: ``declared`` if given, else parsed from ``sql``."""
    if declared is not None:
        if isinstance(declared, str):
            declared = (declared,)
        names = {normalize(t) for t in declared if isinstance(t, str) and t}
        if names:
            return tuple(sorted(names))
    else:
        parsed = _parsed_tables(sql)
        if parsed:
            return parsed
    raise ValidationError("无法从 SQL 中识别缓存查询读取的表, 请传入 tables=", field="tables")


@lru_cache(maxsize=4096)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@lru_cache(maxsize=4096)
def _parsed_tables(sql: str) -> tuple[str, ...]:
    return tuple(sorted(read_tables(sql)))


# -- reads --------------------------------------------------------------------------


async def cached(
    name: str,
    key: str,
    tables: Sequence[str],
    source: str,
    ttl: float,
    load: Callable[[], Awaitable[T]],
) -> T:
    """``load()``'s result from the cache, or ``load()`` (then kept) on a miss.
    What ``load`` returns is shared between callers: rows (kept as plain dicts),
    counts, never models -- callers build fresh objects from it on every call."""
    store = await _usable_store(source)
    if store is None:
        return await load()
    try:
        if _state.pending:
            await _flush_pending(store)
        found, value, stamp = await store.lookup(key, tables)
    except Exception as exc:
        _failed(exc)
        return await load()
    if found:
        _state.hits[name] += 1
        _recovered()
        return value
    _state.misses[name] += 1
    value = portable(await load())
    try:
        await store.save(key, stamp, value, ttl)
    except Exception as exc:
        _failed(exc)
    else:
        _recovered()
    return value


async def _usable_store(source: str) -> Store | None:
    s = _state.settings or settings()
    if not s.enabled or current_tx(source) is not None:
        return None
    if _state.failing and time.monotonic() < _state.retry_at:
        _state.errors += 1  # a store that just failed is not waited on by every request
        return None
    if s.backend == "memory" and s.notify and not await _listening():
        _state.errors += 1
        return None
    return _state.store


async def _listening() -> bool:
    """Whether this loop's NOTIFY listener is connected (starting it the first time)."""
    loop = asyncio.get_running_loop()
    task = _state.listeners.get(loop)
    if task is None:
        task = _state.listeners[loop] = loop.create_task(_listen())
    elif task.done() and not task.cancelled() and task.exception() is None:
        return bool(task.result().connected)  # the hit path: no await
    try:
        listener = await asyncio.shield(task)
    except Exception as exc:
        _state.listeners.pop(loop, None)
        _failed(exc)
        return False
    return bool(listener.connected)


async def _listen() -> Any:
    from ._listen import listen

    listener = await listen(CHANNEL, _received, on_reconnect=_lost_messages, source=PRIMARY)
    # Announcements sent before LISTEN took effect were missed: start clean.
    await _lost_messages()
    return listener


def _received(note: Any) -> None:
    sender, _, names = note.payload.partition(" ")
    if sender == _state.sender:
        return  # our own write, bumped when it committed
    store = _state.store
    if isinstance(store, MemoryStore):
        tables = names.split(",") if names else [ALL]
        _state.invalidations += 1
        for table in tables:  # MemoryStore.bump does no I/O
            store.generations[table] = store.generations.get(table, 0) + 1


async def _lost_messages() -> None:
    store = _state.store
    if store is not None:
        await store.clear()


# -- writes -------------------------------------------------------------------------


async def after_write(tables: Iterable[str], source: str = PRIMARY) -> None:
    """Evict what read ``tables``: after the enclosing transaction commits, at once
    outside one. The executor calls this for every write it parses; raw SQL the
    parser cannot see declares its tables (``Db.execute(..., tables=(...))``)."""
    names = set(tables)
    if not names:
        return
    tx = current_tx(source)
    if tx is None:
        await _announce(names)
        return
    # One announcement per transaction, after its commit (a rollback drops it).
    tx.wrote(names)


async def invalidate(*tables: str, source: str = PRIMARY) -> None:
    """Evict entries that read ``tables`` (all entries when none are given), in every
    process; inside ``transaction()`` after it commits."""
    names = {normalize(t) for t in tables} if tables else {ALL}
    await after_write(names, source)


async def clear() -> None:
    """Drop every entry of this process's store (all processes' with Redis)."""
    store = _state.store
    if store is not None:
        await store.clear()


async def _announce(tables: Collection[str]) -> None:
    """Evict what read ``tables`` now and tell the other processes: their writes
    committed (also the executor's ``committed`` hook)."""
    s = _state.settings or settings()
    store = _state.store
    if store is None or not s.enabled:
        return
    _state.invalidations += 1
    names = sorted(tables)
    try:
        if store.__class__ is MemoryStore:
            store.bump_now(names)
        else:
            await store.bump(names)
    except Exception as exc:
        _state.pending.update(names)  # bumped when the store is back, before any read
        _failed(exc)
    if s.backend == "memory" and s.notify:
        _queue_broadcast(names)


def _queue_broadcast(names: list[str]) -> None:
    """Tell the other processes, off the writer's path: a committed write must not pay
    a second round trip (the open API's one-statement charge would pay it on every
    call). This process's own entries were bumped already.

    An isolated write is announced at once. After each NOTIFY comes a quiet interval
    of :data:`NOTIFY_INTERVAL`: what is written during it goes out in one NOTIFY when
    it ends, so a burst of single-row writes sends one NOTIFY per interval instead of
    one per write (each cost this process a statement and the server a round trip,
    about as much as the write itself)."""
    _state.outgoing.update(names)
    loop = asyncio.get_running_loop()
    task = _state.sending
    if task is not None and not task.done() and task.get_loop() is loop:
        return  # the sender at work schedules the rest when it is done
    timer = _state.timer
    if timer is not None and timer[0] is loop:
        return  # the pending timer sends them
    quiet = _state.quiet
    wait = quiet[1] - loop.time() if quiet is not None and quiet[0] is loop else 0.0
    if wait > 0:
        _state.timer = (loop, loop.call_later(wait, _start_sender, loop))
    else:
        _start_sender(loop)


def _start_sender(loop: asyncio.AbstractEventLoop) -> None:
    timer = _state.timer
    if timer is not None and timer[0] is loop:
        _state.timer = None
    if _state.outgoing:
        # A fresh context: the sender joins no transaction and no caller's flags.
        _state.sending = loop.create_task(_send_outgoing(), context=contextvars.Context())


async def _send_outgoing() -> None:
    names = sorted(_state.outgoing)
    _state.outgoing.clear()
    await _broadcast(names)
    loop = asyncio.get_running_loop()
    _state.quiet = (loop, loop.time() + NOTIFY_INTERVAL)
    if _state.outgoing:  # written while this NOTIFY was on its way
        _state.timer = (loop, loop.call_later(NOTIFY_INTERVAL, _start_sender, loop))


async def _broadcast(names: list[str]) -> None:
    from ._listen import MAX_PAYLOAD_BYTES, notify

    payload = f"{_state.sender} {','.join(names)}"
    if ALL in names or len(payload.encode()) > MAX_PAYLOAD_BYTES:
        payload = f"{_state.sender} "  # too many to name: everything
    # The cache's own traffic: assert_queries and on_query listeners watch the caller's
    # statements, and must not see one more after every committed write.
    token = _exec.internal.set(True)
    try:
        await notify(CHANNEL, payload)
    except Exception as exc:  # the write itself committed: report, do not fail it
        _state.errors += 1
        log.warning("query cache: could not announce a write to %s (%r)", names, exc)
    finally:
        _exec.internal.reset(token)


async def _flush_pending(store: Store) -> None:
    names = sorted(_state.pending)
    await store.bump(names)
    _state.pending.difference_update(names)


def _failed(exc: BaseException) -> None:
    _state.errors += 1
    _state.retry_at = time.monotonic() + RETRY_SECONDS
    if not _state.failing:
        _state.failing = True
        log.warning("query cache unavailable, queries bypass it until it is back: %r", exc)


def _recovered() -> None:
    if _state.failing:
        _state.failing = False
        log.info("query cache available again")


async def close() -> None:
    """Stop this loop's listener and close store connections (``luser_db.close`` calls
    it, before the pools close)."""
    loop = asyncio.get_running_loop()
    while True:  # announce what was written before the pools close, without waiting
        timer = _state.timer
        if timer is not None and timer[0] is loop:
            timer[1].cancel()
            _start_sender(loop)
        sending = _state.sending
        if sending is None or sending.get_loop() is not loop or sending.done():
            break
        await asyncio.wait({sending})
    task = _state.listeners.pop(loop, None)
    if task is not None:
        if not task.done():
            task.cancel()  # still connecting: shutting down must not wait for it
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            await task.result().close()
    store = _state.store
    if isinstance(store, RedisStore):
        await store.close()


_install_bootstrap()
_pool.close_hooks.append(close)
