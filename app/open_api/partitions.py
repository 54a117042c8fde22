"""Monthly partitions of router_logs: create ahead, detach and drop after retention.

Partitions are named ``router_logs_YYYYMM`` and cover ``[month, next month)`` (UTC).
There is no DEFAULT partition (PostgreSQL refuses ``DETACH ... CONCURRENTLY`` while
one exists): a row whose month has no partition makes the log writer call
``ensure_partitions`` and write again.

The job must never stall readers behind it. Every DDL statement runs on a direct
connection of its own (``luser_db.direct_connection``: outside any transaction,
past PgBouncer) under a short ``lock_timeout``, and is retried with backoff
(``luser_db.retry``) when the lock does not come: an ``ACCESS EXCLUSIVE`` request
waiting behind a long log query would queue every later reader behind it.
Creating is ``CREATE TABLE`` + ``ATTACH PARTITION`` (``SHARE UPDATE EXCLUSIVE`` on
the parent, which readers do not conflict with); retention is ``DETACH PARTITION
... CONCURRENTLY`` (the same lock, then it waits for older snapshots to end),
then ``DROP TABLE`` of the detached table, which no reader of router_logs touches
any more. A session advisory lock keeps nodes from running the job at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial

import luser_db
from luser_common import utc_now
from luser_db import full_jitter

__all__ = [
    "PartitionReport",
    "add_months",
    "ensure_partitions",
    "maintain_partitions",
    "month_start",
]

_LOCK_KEY = 0x6F70656E6C6F6773  # "openlogs"
LOCK_TIMEOUT = timedelta(seconds=2)
ATTEMPTS = 10
_PRUNE_BATCH = 5_000  # quota_deductions rows per DELETE: short transactions, no bloat spike


@dataclass(frozen=True, slots=True)
class PartitionReport:
    created: list[str]
    dropped: list[str]
    deductions_pruned: int
    usage_pruned: int = 0


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"router_logs_{month:%Y%m}"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def maintain_partitions(
    *,
    ahead: int = 2,
    retention_months: int = 6,
    usage_retention_months: int = 13,
    now: datetime | None = None,
    lock_timeout: timedelta = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
) -> PartitionReport:
    """Create this month's and ``ahead`` future partitions; detach and drop the ones
    older than ``retention_months``; prune quota_deductions past the same cutoff and
    usage rollups older than ``usage_retention_months``."""
    today = month_start(now or utc_now())
    cutoff = add_months(today, -retention_months)
    async with _ddl_session(lock_timeout) as ddl:
        months = [add_months(today, i) for i in range(ahead + 1)]
        created = await _create_missing(ddl, months, attempts)
        dropped: list[str] = []
        for name, upper in await _partitions(ddl):
            if upper is not None and upper <= cutoff:
                await _retry(partial(_detach, ddl, name), attempts)
                await _retry(partial(ddl.execute, f'DROP TABLE "{name}"'), attempts)
                dropped.append(name)
    pruned = await _prune_deductions(_midnight(cutoff))
    usage_cutoff = _midnight(add_months(today, -usage_retention_months))
    usage = await luser_db.Db.execute("DELETE FROM router_log_usage WHERE bucket < ?", usage_cutoff)
    return PartitionReport(created, dropped, pruned, usage)


async def ensure_partitions(
    moments: Iterable[datetime],
    *,
    lock_timeout: timedelta = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
) -> list[str]:
    """Create the partitions the months of ``moments`` lack (the log writer's fallback)."""
    months = sorted({month_start(m.astimezone(UTC)) for m in moments})
    async with _ddl_session(lock_timeout) as ddl:
        return await _create_missing(ddl, months, attempts)


class _ddl_session:
    """A direct connection holding the job's advisory lock, with ``lock_timeout`` set."""

    def __init__(self, lock_timeout: timedelta) -> None:
        self._ms = max(1, int(lock_timeout.total_seconds() * 1000))
        self._cm = luser_db.direct_connection()

    async def __aenter__(self) -> luser_db.Connection:
        conn = await self._cm.__aenter__()
        try:
            # Session settings on a connection of our own: they end when it closes.
            await conn.execute(f"SET lock_timeout = {self._ms}")
            await _retry(partial(conn.execute, "SELECT pg_advisory_lock($1)", _LOCK_KEY), ATTEMPTS)
        except BaseException:
            await self._cm.__aexit__(None, None, None)
            raise
        return conn

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(None, None, None)


async def _retry(step: Callable[[], Awaitable[object]], attempts: int) -> None:
    # Lock timeouts are retryable (luser_db.is_retryable); each try is one statement.
    await luser_db.retry(step, attempts=attempts, backoff=full_jitter(0.05, 2.0))


async def _partitions(conn: luser_db.Connection) -> list[tuple[str, date | None]]:
    """Attached (or detach-pending) partitions and the month each one ends at."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'router_logs'::regclass ORDER BY 1"
    )
    found: list[tuple[str, date | None]] = []
    for row in rows:
        suffix = row["relname"].removeprefix("router_logs_")
        upper = None
        if len(suffix) == 6 and suffix.isdigit():
            upper = add_months(date(int(suffix[:4]), int(suffix[4:]), 1), 1)
        found.append((row["relname"], upper))
    return found


async def _create_missing(
    conn: luser_db.Connection, months: list[date], attempts: int
) -> list[str]:
    existing = {name for name, _ in await _partitions(conn)}
    created = []
    for lo in months:
        name = partition_name(lo)
        if name not in existing:
            await _retry(partial(_create, conn, name, lo), attempts)
            created.append(name)
    return created


async def _create(conn: luser_db.Connection, name: str, lo: date) -> None:
    # name and bounds are built from dates here, never from input: safe to interpolate.
    # IF NOT EXISTS: a try whose ATTACH timed out left the table behind.
    hi = add_months(lo, 1)
    await conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (LIKE router_logs INCLUDING DEFAULTS)')
    bounds = f"FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
    await conn.execute(f'ALTER TABLE router_logs ATTACH PARTITION "{name}" FOR VALUES {bounds}')


async def _detach(conn: luser_db.Connection, name: str) -> None:
    # A CONCURRENTLY detach interrupted in its second phase (a lock timeout while it
    # waited for older snapshots) leaves the partition "detach pending": FINALIZE ends it.
    pending = await conn.fetchval(
        "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'router_logs'::regclass AND c.relname = $1",
        name,
    )
    if pending is None:
        return  # already detached by an earlier try
    mode = "FINALIZE" if pending else "CONCURRENTLY"
    await conn.execute(f'ALTER TABLE router_logs DETACH PARTITION "{name}" {mode}')


async def _prune_deductions(before: datetime) -> int:
    """Delete quota_deductions rows older than ``before``, a bounded batch at a time.

    Not partitioned: its primary key (the request id) is what makes a charge
    exactly-once, and a partitioned table can only enforce a key that includes the
    partition column (see docs/operations.md)."""
    total = 0
    while True:
        n = await luser_db.Db.execute(
            "DELETE FROM quota_deductions WHERE request_id IN ("
            "SELECT request_id FROM quota_deductions WHERE created_at < ? LIMIT ?)",
            before,
            _PRUNE_BATCH,
        )
        total += n
        if n < _PRUNE_BATCH:
            return total
