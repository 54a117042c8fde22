"""Monthly partitions of router_logs and quota_deductions: create ahead, detach and
drop after retention.

Partitions are named ``<table>_YYYYMM`` and cover ``[month, next month)`` (UTC).
There is no DEFAULT partition (PostgreSQL refuses ``DETACH ... CONCURRENTLY`` while
one exists): a row whose month has no partition makes the log writer call
``ensure_partitions`` and write again, and a charge call ``ensure_current_partition``
and charge again. Dropping a month of quota_deductions forgets its keys: a request
id charged in it can be charged again, as when rows were deleted by date.

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
    "DEDUCTIONS",
    "LOGS",
    "PartitionReport",
    "add_months",
    "ensure_current_partition",
    "ensure_partitions",
    "maintain_partitions",
    "month_start",
]

_LOCK_KEY = 0x6F70656E6C6F6773  # "openlogs"
LOCK_TIMEOUT = timedelta(seconds=2)
ATTEMPTS = 10
LOGS = "router_logs"
DEDUCTIONS = "quota_deductions"
_TABLES = (LOGS, DEDUCTIONS)  # partitioned by month on created_at, same retention


@dataclass(frozen=True, slots=True)
class PartitionReport:
    created: list[str]
    dropped: list[str]
    usage_pruned: int = 0


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date, table: str = LOGS) -> str:
    return f"{table}_{month:%Y%m}"


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
    """Create this month's and ``ahead`` future partitions of router_logs and
    quota_deductions; detach and drop the ones older than ``retention_months``; prune
    usage rollups older than ``usage_retention_months``."""
    today = month_start(now or utc_now())
    cutoff = add_months(today, -retention_months)
    created: list[str] = []
    dropped: list[str] = []
    async with _ddl_session(lock_timeout) as ddl:
        months = [add_months(today, i) for i in range(ahead + 1)]
        for table in _TABLES:
            created += await _create_missing(ddl, table, months, attempts)
            dropped += await _drop_expired(ddl, table, cutoff, attempts)
    usage_cutoff = _midnight(add_months(today, -usage_retention_months))
    usage = await luser_db.Db.execute("DELETE FROM router_log_usage WHERE bucket < ?", usage_cutoff)
    return PartitionReport(created, dropped, usage)


async def ensure_partitions(
    moments: Iterable[datetime],
    *,
    table: str = LOGS,
    lock_timeout: timedelta = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
) -> list[str]:
    """Create the partitions the months of ``moments`` lack (the log writer's fallback)."""
    months = sorted({month_start(m.astimezone(UTC)) for m in moments})
    async with _ddl_session(lock_timeout) as ddl:
        return await _create_missing(ddl, _known(table), months, attempts)


async def ensure_current_partition(
    table: str, *, lock_timeout: timedelta = LOCK_TIMEOUT, attempts: int = ATTEMPTS
) -> list[str]:
    """Create ``table``'s partition for the database's current month (the charge's
    fallback: its rows take ``created_at`` from the database clock, not ours)."""
    async with _ddl_session(lock_timeout) as ddl:
        now: datetime = await ddl.fetchval("SELECT now()")
        return await _create_missing(
            ddl, _known(table), [month_start(now.astimezone(UTC))], attempts
        )


def _known(table: str) -> str:
    # Table names are interpolated into DDL: only the partitioned tables we manage.
    if table not in _TABLES:
        raise ValueError(f"not a monthly-partitioned table: {table!r}")
    return table


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


async def _partitions(conn: luser_db.Connection, table: str) -> list[tuple[str, date | None]]:
    """Attached (or detach-pending) partitions and the month each one ends at."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass ORDER BY 1",
        table,
    )
    found: list[tuple[str, date | None]] = []
    for row in rows:
        suffix = row["relname"].removeprefix(f"{table}_")
        upper = None
        if len(suffix) == 6 and suffix.isdigit():
            upper = add_months(date(int(suffix[:4]), int(suffix[4:]), 1), 1)
        found.append((row["relname"], upper))
    return found


async def _create_missing(
    conn: luser_db.Connection, table: str, months: list[date], attempts: int
) -> list[str]:
    existing = {name for name, _ in await _partitions(conn, table)}
    created = []
    for lo in months:
        name = partition_name(lo, table)
        if name not in existing:
            await _retry(partial(_create, conn, table, name, lo), attempts)
            created.append(name)
    return created


async def _drop_expired(
    conn: luser_db.Connection, table: str, cutoff: date, attempts: int
) -> list[str]:
    dropped = []
    for name, upper in await _partitions(conn, table):
        if upper is not None and upper <= cutoff:
            await _retry(partial(_detach, conn, table, name), attempts)
            await _retry(partial(conn.execute, f'DROP TABLE "{name}"'), attempts)
            dropped.append(name)
    return dropped


async def _create(conn: luser_db.Connection, table: str, name: str, lo: date) -> None:
    # table is one of _TABLES, name and bounds are built from dates here, never from
    # input: safe to interpolate. IF NOT EXISTS: a try whose ATTACH timed out left the
    # table behind. CONSTRAINTS: ATTACH requires the parent's CHECKs on the table.
    hi = add_months(lo, 1)
    await conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{name}" '
        f"(LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    bounds = f"FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
    await conn.execute(f'ALTER TABLE {table} ATTACH PARTITION "{name}" FOR VALUES {bounds}')


async def _detach(conn: luser_db.Connection, table: str, name: str) -> None:
    # A CONCURRENTLY detach interrupted in its second phase (a lock timeout while it
    # waited for older snapshots) leaves the partition "detach pending": FINALIZE ends it.
    pending = await conn.fetchval(
        "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass AND c.relname = $2",
        table,
        name,
    )
    if pending is None:
        return  # already detached by an earlier try
    mode = "FINALIZE" if pending else "CONCURRENTLY"
    await conn.execute(f'ALTER TABLE {table} DETACH PARTITION "{name}" {mode}')
