"""The usage rollup, caught up by id off the write path, is the exact aggregate of the
raw log rows, whoever wrote them (migration 0047).

The log writer only copies; ``catch_up`` (the rollup job, and every usage report)
adds the rows past the last id it counted. Each test compares router_log_usage with
migration 0044's GROUP BY over router_logs, for users of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from app.open_api import service as service_module
from app.open_api.logs import LogRow, LogWriter, daily_usage
from app.open_api.partitions import add_months, month_start
from app.open_api.recovery import recover
from app.open_api.rollup import catch_up
from app.open_api.service import OpenApi
from app.settings import OpenApiConfig

USERS = range(900_300_001, 900_300_010)

# Migration 0044's definition of the rollup (its trigger and its backfill).
_FROM_RAW_SQL = """
SELECT user_id, date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
       coalesce(token_id, 0) AS token_id, ability, count(*) AS calls,
       count(*) FILTER (WHERE status_code < 400) AS succeeded, coalesce(sum(cost), 0) AS cost
FROM router_logs WHERE user_id = ANY($1::bigint[])
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
_ROLLUP_SQL = """
SELECT user_id, bucket, token_id, ability, calls, succeeded, cost
FROM router_log_usage WHERE user_id = ANY($1::bigint[]) ORDER BY 1, 2, 3, 4
"""


def _row(
    user_id: int,
    at: datetime,
    *,
    token: int | None = 1,
    ability: str = "catalog.search",
    status: int = 200,
    cost: int = 5,
    deduction: str | None = None,
) -> LogRow:
    return LogRow(
        request_id=uuid.uuid4().hex,
        user_id=user_id,
        token_id=token,
        path="/open/v1/videos",
        ability=ability,
        channel_id=1,
        failed_channel_ids=None,
        status_code=status,
        error_code=None,
        latency_ms=3,
        units=1,
        cost=cost,
        client_ip="10.0.0.1",
        created_at=at,
        deduction_id=deduction,
    )


async def _rollup_and_raw(
    conn: asyncpg.Connection, users: list[int]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    rollup = [tuple(r) for r in await conn.fetch(_ROLLUP_SQL, users)]
    raw = [tuple(r) for r in await conn.fetch(_FROM_RAW_SQL, users)]
    return rollup, raw


async def test_the_rollup_is_the_aggregate_of_mixed_writer_batches(
    conn: asyncpg.Connection,
) -> None:
    users = list(USERS[:4])
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    # Two writers (two service processes) of 4 concurrent batches of 20 each: every
    # batch repeats keys, and the batches interleave their ids.
    writer, other = LogWriter(batch_size=20, writers=4), LogWriter(batch_size=20, writers=4)
    for i in range(160):
        at = noon + timedelta(minutes=7 * (i % 5))  # slots 12:00, 12:15 and 12:30
        if i % 7 == 0:  # the same instants in other forms: another zone, naive local time
            at = at.astimezone(ZoneInfo("Asia/Shanghai"))
        elif i % 11 == 0:
            at = at.astimezone().replace(tzinfo=None)
        (writer, other)[i % 2].insert_log(
            _row(
                users[i // 2 % 4],
                at,
                token=(1, 2, None)[i % 3],
                ability=("catalog.search", "vod.play")[i // 8 % 2],
                status=(200, 201, 302, 399, 400, 502)[i // 3 % 6],
                cost=i * 1_000_003,
            )
        )
    await asyncio.gather(writer.flush(), other.flush())
    # One batch across two months' partitions (neither exists yet: created on demand).
    month = add_months(month_start(noon), 40)
    boundary = datetime(month.year, month.month, 1, tzinfo=UTC)
    for i in range(30):
        at = boundary + timedelta(minutes=(i - 15) * 2)  # 23:30 .. 00:28 across the month
        if i % 2:  # in Shanghai all of them fall on the 1st: the month is UTC's
            at = at.astimezone(ZoneInfo("Asia/Shanghai"))
        writer.insert_log(_row(users[i % 2], at, status=(200, 404)[i % 3 == 0], cost=i))
    await writer.flush()
    assert (writer.written, writer.failed, writer.dropped) == (110, 0, 0)
    assert (other.written, other.failed, other.dropped) == (80, 0, 0)
    assert await conn.fetchval(
        f"SELECT count(*) FROM router_logs_{month:%Y%m} WHERE user_id = ANY($1::bigint[])", users
    ) == sum(1 for i in range(30) if i >= 15)

    rollup, raw = await _rollup_and_raw(conn, users)
    assert rollup == []  # the writer only copies: nothing counted on the write path
    assert await catch_up() >= len(raw)
    rollup, raw = await _rollup_and_raw(conn, users)
    assert rollup == raw
    assert len(raw) > 30  # many keys, none of them trivially empty
    assert {r[3] for r in raw} == {"catalog.search", "vod.play"}
    assert {r[2] for r in raw} == {0, 1, 2}
    assert any(r[4] != r[5] for r in raw)  # failures counted apart


async def test_rows_crash_recovery_rebuilds_are_counted(conn: asyncpg.Connection) -> None:
    user = USERS[3] + 100  # a user of its own: recovery rebuilds every user's lost rows
    at = datetime.now(UTC) - timedelta(minutes=1)
    charged = [f"{user}:{uuid.uuid4()}" for _ in range(4)]
    for n, request_id in enumerate(charged):
        await conn.execute(
            "INSERT INTO quota_deductions (request_id, user_id, token_id, amount, created_at,"
            " ability, path, refunded_at) VALUES ($1, $2, 7, 300, $3, 'vod.play', '/open/v1/p',"
            " CASE WHEN $4 THEN $3::timestamptz END)",
            request_id,
            user,
            at,
            n == 3,
        )
    # The first charge's row reached the writer; the other three died with a process.
    writer = LogWriter()
    writer.insert_log(_row(user, at, token=7, ability="vod.play", cost=300, deduction=charged[0]))
    await writer.flush()
    report = await recover(older_than=timedelta(0))
    assert report.logs_rebuilt >= 3
    await catch_up()
    rollup, raw = await _rollup_and_raw(conn, [user])
    assert rollup == raw
    # One key: 4 calls; the writer's cost 300, the rebuilt ones 300 + 300 + 0 (refunded).
    assert [(r[2], r[3], r[4], r[6]) for r in raw] == [(7, "vod.play", 4, 900)]
    assert raw[0][1] == at.replace(minute=at.minute // 15 * 15, second=0, microsecond=0)


async def _log_now(conn: asyncpg.Connection, user: int, cost: int) -> int:
    """Insert one row for ``user`` on ``conn`` (in its transaction, if any); its id."""
    row_id: int = await conn.fetchval(
        "INSERT INTO router_logs (request_id, user_id, token_id, path, ability, status_code,"
        " cost) VALUES ($1, $2, 1, '/p', 'vod.play', 200, $3) RETURNING id",
        uuid.uuid4().hex,
        user,
        cost,
    )
    return row_id


async def _counted(conn: asyncpg.Connection, user: int) -> tuple[int, int] | None:
    row = await conn.fetchrow(
        "SELECT sum(calls)::bigint, sum(cost)::bigint FROM router_log_usage WHERE user_id = $1",
        user,
    )
    return None if row[0] is None else (row[0], row[1])


async def test_a_writer_still_in_flight_is_never_skipped(pool: asyncpg.Pool) -> None:
    # A row with a low id, not committed yet, while a later id is committed: the
    # catch-up must not move past the low id without it.
    user = USERS[5]
    async with pool.acquire() as slow, pool.acquire() as fast, pool.acquire() as probe:
        tx = slow.transaction()
        await tx.start()
        low = await _log_now(slow, user, 1)
        high = await _log_now(fast, user, 10)
        assert low < high
        # It cannot wait for the slow writer that long: it counts nothing (not even the
        # committed later row) and keeps its place.
        assert await catch_up(lock_wait=timedelta(milliseconds=50)) is None
        assert await _counted(probe, user) is None
        # Given the time, it waits for the slow writer's commit, then counts both rows.
        job = asyncio.create_task(catch_up(lock_wait=timedelta(seconds=30)))
        end = time.monotonic() + 10
        while not await probe.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
            " AND relation = 'router_logs'::regclass AND mode = 'ShareRowExclusiveLock')"
        ):  # a query per turn, no sleep: the catch-up is queued behind the slow writer
            assert time.monotonic() < end, "the catch-up never waited for the writer"
        assert not job.done()
        await tx.commit()
        assert await asyncio.wait_for(job, 10)
        assert await _counted(probe, user) == (2, 11)


async def test_catch_up_counts_each_row_once(pool: asyncpg.Pool) -> None:
    user = USERS[6]
    async with pool.acquire() as first, pool.acquire() as probe:
        await _log_now(probe, user, 3)
        await catch_up()
        assert await catch_up() == 0  # nothing new: nothing added twice
        await _log_now(probe, user, 4)
        # Two runners at once: the second waits for the first's commit, then finds
        # the row counted (without the state row's lock it would count it again).
        tx = first.transaction()
        await tx.start()
        assert await first.fetchval("SELECT open_api_rollup_catch_up()") >= 1
        second = asyncio.create_task(catch_up())
        end = time.monotonic() + 10
        while not await probe.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%open_api_rollup_catch_up%')"
        ):  # a query per turn, no sleep: the second runner is blocked by the first
            assert time.monotonic() < end, "the second runner never waited"
        await tx.commit()
        await asyncio.wait_for(second, 10)
        assert await _counted(probe, user) == (2, 7)


async def test_dropped_log_partitions_do_not_break_the_catch_up(conn: asyncpg.Connection) -> None:
    # Rows not yet counted whose partition retention drops (months old: crash
    # recovery's, say): gone with it, and the catch-up goes on past them.
    user = USERS[7]
    month = add_months(month_start(datetime.now(UTC)), -70)
    writer = LogWriter()
    writer.insert_log(_row(user, datetime(month.year, month.month, 2, tzinfo=UTC)))
    await writer.flush()
    name = f"router_logs_{month:%Y%m}"
    await conn.execute(f"ALTER TABLE router_logs DETACH PARTITION {name}")
    await conn.execute(f"DROP TABLE {name}")
    await _log_now(conn, user, 6)
    assert await catch_up() >= 1
    assert await _counted(conn, user) == (1, 6)


async def test_the_usage_report_counts_calls_the_job_has_not_reached(
    conn: asyncpg.Connection,
) -> None:
    user = USERS[8]
    await catch_up()
    now = datetime.now(UTC)
    writer = LogWriter()
    for cost in (1, 2, 3):
        writer.insert_log(_row(user, now, cost=cost))
    await writer.flush()
    usage = await daily_usage(user, now - timedelta(hours=1), now + timedelta(hours=1))
    assert [(u["calls"], u["cost"]) for u in usage] == [(3, 6)]


async def test_the_rollup_job_runs_every_configured_interval(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's periodic jobs, recorded instead of run: (seconds, job) by name.
    jobs: dict[str, tuple[float, Any]] = {}

    async def record(seconds: float, job: Any, *, name: str, first: float | None = None) -> None:
        jobs[name] = (seconds, job)
        await asyncio.Event().wait()

    monkeypatch.setattr(service_module, "every", record)
    api = OpenApi(OpenApiConfig(rollup_interval_seconds=7.5))
    await api.start()
    try:
        await asyncio.sleep(0)  # let the recording tasks start (not a wait for a result)
        seconds, tick = jobs["open-api-usage-rollup"]
        assert seconds == 7.5
        user = USERS[0] + 50
        await _log_now(conn, user, 9)
        await tick()
        assert await _counted(conn, user) == (1, 9)
    finally:
        await api.stop()
