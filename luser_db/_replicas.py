"""Read replicas: which server a statement outside a transaction goes to.

A data source may list ``replicas``. A read (a statement :func:`~.errors.may_write`
calls harmless) outside a transaction goes to a healthy replica picked round-robin
or least-busy; writes, everything inside a transaction, reads of a task that wrote
less than ``sticky_after_write_ms`` ago, and sources pinned with ``"primary"``
(``using("primary")``, ``Db.use("primary")``) go to the primary.

Health and lag are measured in the background at most every ``replica_check_ms``
and cached: a read never waits for a measurement. Until the first one, and whenever
no replica is up and within ``max_lag_ms``, reads use the primary and are counted
(:func:`replica_stats`). A read that finds its replica unreachable marks it down
and runs on the primary instead (reads are safe to run again).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from luser_common import DatabaseUnavailable

from ._context import current_txs
from ._datasource import PRIMARY, data_source_config, database_config, replica_name
from ._pool import acquire, get_pool, reset_hooks
from .errors import PoolClosed, ReadOnlyError, may_write

__all__ = [
    "PINNED",
    "ReplicaStats",
    "base_source",
    "check_replicas",
    "inline_target",
    "plain_sources",
    "read_source",
    "replica_stats",
    "reset_replicas",
    "run_routed",
]

# ``using("primary")``: the default source, never a replica. ``"<name>:primary"`` pins
# a named source the same way.
PINNED = "primary"
_PIN_SUFFIX = ":primary"

# Replay lag in ms as the replica sees it: 0 when it has replayed all it received
# (an idle primary sends nothing, so an old replay timestamp alone is not lag);
# NULL (unknown → lagging) when it is behind and has replayed nothing since start.
LAG_SQL = """
select case
    when not pg_is_in_recovery() then 0
    when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
    else extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000
end
"""

# Sources known to have no replicas and no pin: run() checks this set first, so a
# plain setup pays one set lookup per statement.
plain_sources: set[str] = set()

# Monotonic deadline until which this task's reads stay on the primary.
_sticky_until: ContextVar[float] = ContextVar("luser_db_sticky_until", default=0.0)


@dataclass(slots=True)
class _Replica:
    name: str  # its pool's data source name, e.g. default@replica1
    up: bool | None = None  # None: not measured yet
    lag_ms: float | None = None
    in_flight: int = 0
    reads: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Group:
    """The replicas of one data source, with their last measurement."""

    source: str
    replicas: list[_Replica]
    strategy: str
    max_lag_ms: float
    check_s: float
    checked_at: float = -1e18
    checking: asyncio.Task[None] | None = None
    fallbacks: int = 0  # reads sent to the primary because no replica was usable
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def usable(self) -> list[_Replica]:
        return [
            r
            for r in self.replicas
            if r.up and r.lag_ms is not None and r.lag_ms <= self.max_lag_ms
        ]

    def pick(self) -> _Replica | None:
        """A usable replica, or None (then the primary serves and it is counted)."""
        if time.monotonic() - self.checked_at >= self.check_s and not self._checking():
            self.checking = asyncio.get_running_loop().create_task(self.check())
        usable = self.usable()
        if not usable:
            self.fallbacks += 1
            return None
        if self.strategy == "least_busy":
            least = min(r.in_flight for r in usable)
            usable = [r for r in usable if r.in_flight == least]
        return usable[next(self.turn) % len(usable)]

    def _checking(self) -> bool:
        # A check left pending by an event loop that has closed since never finishes.
        return self.checking is not None and not self.checking.get_loop().is_closed()

    async def check(self) -> None:
        """Measure every replica now (reachable? lag?) and cache the result."""
        try:
            await asyncio.gather(*(self._measure(r) for r in self.replicas))
        finally:
            self.checked_at = time.monotonic()
            self.checking = None

    async def _measure(self, replica: _Replica) -> None:
        try:
            timeout = data_source_config(replica.name).connect_timeout
            async with asyncio.timeout(timeout):
                pool = await get_pool(replica.name)
                conn = await acquire(pool, replica.name)
                try:
                    lag = await conn.fetchval(LAG_SQL)
                finally:
                    await pool.release(conn)
        except Exception:  # any failure to reach or ask it: down until the next check
            replica.up, replica.lag_ms = False, None
            return
        replica.up, replica.lag_ms = True, None if lag is None else float(lag)


_groups: dict[str, _Group | None] = {}


def _group(base: str) -> _Group | None:
    """The replica group of data source ``base`` from the live config (cached)."""
    try:
        return _groups[base]
    except KeyError:
        pass
    try:
        cfg = data_source_config(base)
    except Exception:  # a source set only by init(url, name=...): no replicas
        cfg = None
    group = None
    if cfg is not None and cfg.replicas:
        group = _Group(
            source=base,
            replicas=[_Replica(replica_name(base, i + 1)) for i in range(len(cfg.replicas))],
            strategy=cfg.replica_strategy,
            max_lag_ms=cfg.max_lag_ms,
            check_s=cfg.replica_check_ms / 1000,
        )
    _groups[base] = group
    return group


@lru_cache(maxsize=256)
def _split(source: str) -> tuple[str, bool]:
    """``(data source, pinned to its primary)`` for a name given to ``using()``."""
    if source == PINNED:
        return PRIMARY, True
    if source.endswith(_PIN_SUFFIX):
        return source[: -len(_PIN_SUFFIX)], True
    return source, False


def base_source(source: str) -> str:
    """The data source behind ``source`` (``"primary"`` → the default one)."""
    return _split(source)[0]


def _sticky_window_s() -> float:
    try:
        return database_config().sticky_after_write_ms / 1000
    except Exception:  # no usable config (init(url) only): the default window
        return 1.0


def mark_written() -> None:
    """This task wrote: keep its reads on the primary for the sticky window."""
    _sticky_until.set(time.monotonic() + _sticky_window_s())


Run = Callable[..., Coroutine[Any, Any, Any]]


def inline_target(source: str, sql: str) -> str | None:
    """Where ``run`` sends ``sql`` itself: the primary's name when no replica is
    involved (no replicas, pinned, in a transaction, sticky), else None and
    :func:`run_routed` takes over (a read for a replica, a write to mark sticky)."""
    base, pinned = _split(source)
    group = _group(base)
    if group is None:
        if not pinned:
            plain_sources.add(base)
        return base
    txs = current_txs.get()
    tx = txs.get(base) if txs is not None else None
    if tx is not None and tx.active:
        if may_write(sql):
            mark_written()
            _on_commit(tx, mark_written)  # the window starts when the data is visible
        return base
    if may_write(sql):
        return None
    if pinned or time.monotonic() < _sticky_until.get():
        return base
    return None


async def run_routed(run: Run, op: Any, sql: str, args: Any, source: str, raw: bool) -> Any:
    """``run`` for what :func:`inline_target` left: a write outside a transaction
    (then reads stick to the primary), or a read for a replica."""
    base, _ = _split(source)
    group = _group(base)
    assert group is not None
    if may_write(sql):
        try:
            return await run(op, sql, args, base, raw, True)
        finally:
            mark_written()
    replica = group.pick()
    if replica is None:
        return await run(op, sql, args, base, raw, True)
    replica.in_flight += 1
    try:
        result = await run(op, sql, args, replica.name, raw, True)
    except (ReadOnlyError, PoolClosed):
        raise  # a write that looked like a read; the pools were closed: not the replica's fault
    except DatabaseUnavailable:
        replica.up = False
        replica.failures += 1
        group.fallbacks += 1
        return await run(op, sql, args, base, raw, True)
    finally:
        replica.in_flight -= 1
    replica.reads += 1
    return result


def _on_commit(tx: Any, callback: Callable[[], None]) -> None:
    level = tx.levels[-1]
    if callback not in level.on_commit:
        level.on_commit.append(callback)


def read_source(source: str) -> str:
    """The pool a streaming read (``iterate``) of ``source`` uses outside a transaction."""
    base, pinned = _split(source)
    group = _group(base)
    if group is None or pinned or time.monotonic() < _sticky_until.get():
        return base
    replica = group.pick()
    if replica is None:
        return base
    replica.reads += 1
    return replica.name


async def check_replicas(source: str = PRIMARY) -> None:
    """Measure the replicas of ``source`` now instead of waiting for the next check."""
    group = _group(base_source(source))
    if group is None:
        return
    if group._checking() and group.checking is not asyncio.current_task():
        assert group.checking is not None
        await asyncio.shield(group.checking)
        return
    await group.check()


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """One replica now: reachable, measured lag, reads served, reads it failed, busy."""

    source: str
    replica: str
    up: bool | None
    lag_ms: float | None
    reads: int
    failures: int
    in_flight: int
    primary_fallbacks: int  # the source's reads sent to the primary for want of a replica


def replica_stats() -> list[ReplicaStats]:
    """A snapshot of every replica luser_db has routed to (for metrics and tests)."""
    return [
        ReplicaStats(
            g.source, r.name, r.up, r.lag_ms, r.reads, r.failures, r.in_flight, g.fallbacks
        )
        for g in list(_groups.values())
        if g is not None
        for r in g.replicas
    ]


def reset_replicas() -> None:
    """Forget groups, measurements and counters (config changed, or tests)."""
    plain_sources.clear()
    for group in _groups.values():
        if group is not None and group.checking is not None:
            group.checking.cancel()
    _groups.clear()


reset_hooks.append(reset_replicas)
