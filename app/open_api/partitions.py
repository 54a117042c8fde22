"""Monthly partitions of router_logs: create ahead, drop after the retention period.

Partitions are named ``router_logs_YYYYMM`` and cover ``[month, next month)``.
Rows whose month had no partition land in ``router_logs_default``; creating
that month's partition later moves them out of the default partition first
(PostgreSQL refuses to attach a range the default partition still holds).
Every run holds a transaction-level advisory lock, so nodes never race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import luser_db
from luser_common import utc_now
from luser_db import transaction

__all__ = ["PartitionReport", "add_months", "maintain_partitions", "month_start"]

_LOCK_KEY = 0x6F70656E6C6F6773  # "openlogs"


@dataclass(frozen=True, slots=True)
class PartitionReport:
    created: list[str]
    dropped: list[str]
    deductions_pruned: int


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"router_logs_{month:%Y%m}"


async def maintain_partitions(
    *, ahead: int = 2, retention_months: int = 6, now: datetime | None = None
) -> PartitionReport:
    """Create this month's and ``ahead`` future partitions; drop ones past retention."""
    today = month_start(now or utc_now())
    cutoff = add_months(today, -retention_months)
    created: list[str] = []
    dropped: list[str] = []
    async with transaction(), luser_db.connection() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        existing = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'router_logs'::regclass"
            )
        }
        for i in range(ahead + 1):
            lo = add_months(today, i)
            name = partition_name(lo)
            if name not in existing:
                await _create_partition(conn, name, lo, add_months(lo, 1))
                created.append(name)
        for name in sorted(existing):
            suffix = name.removeprefix("router_logs_")
            if len(suffix) == 6 and suffix.isdigit():
                upper = add_months(date(int(suffix[:4]), int(suffix[4:]), 1), 1)
                if upper <= cutoff:
                    await conn.execute(f'DROP TABLE "{name}"')
                    dropped.append(name)
        status = await conn.execute(
            "DELETE FROM quota_deductions WHERE created_at < $1",
            datetime(cutoff.year, cutoff.month, 1, tzinfo=UTC),
        )
    return PartitionReport(created, dropped, int(status.rsplit(" ", 1)[-1]))


async def _create_partition(conn: luser_db.Connection, name: str, lo: date, hi: date) -> None:
    # name and bounds are built from dates here, never from input: safe to interpolate.
    await conn.execute(f'CREATE TABLE "{name}" (LIKE router_logs INCLUDING DEFAULTS)')
    await conn.execute(
        "WITH moved AS (DELETE FROM router_logs_default "
        "WHERE created_at >= $1 AND created_at < $2 RETURNING *) "
        f'INSERT INTO "{name}" SELECT * FROM moved',
        datetime(lo.year, lo.month, 1, tzinfo=UTC),
        datetime(hi.year, hi.month, 1, tzinfo=UTC),
    )
    bounds = f"FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
    await conn.execute(f'ALTER TABLE router_logs ATTACH PARTITION "{name}" FOR VALUES {bounds}')
