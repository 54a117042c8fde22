"""Issue 19 item 4: usage from incremental rollups, partition maintenance that never
queues readers (lock_timeout + retry, DETACH ... CONCURRENTLY), retention from config."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.open_api.logs import LogRow, LogWriter, daily_usage, usage_window
from app.open_api.partitions import add_months, ensure_partitions, maintain_partitions, month_start
from app.open_api.rollup import catch_up
from app.open_api.service import OpenApi
from app.settings import OpenApiConfig
from luser_common import AppError

KEEP_USAGE = 120  # months: other tests' rollup rows stay


def _row(user_id: int, at: datetime, *, cost: int = 5, status: int = 200, token: int = 1) -> LogRow:
    return LogRow(
        request_id=uuid.uuid4().hex,
        user_id=user_id,
        token_id=token,
        path="/open/v1/videos",
        ability="catalog.search",
        channel_id=1,
        failed_channel_ids=None,
        status_code=status,
        error_code=None,
        latency_ms=3,
        units=1,
        cost=cost,
        client_ip="10.0.0.1",
        created_at=at,
    )


async def _poll(conn: asyncpg.Connection, sql: str, *args: object, deadline: float = 10) -> None:
    """Wait (bounded) until ``sql`` returns true: the state another task must reach."""
    end = time.monotonic() + deadline
    while not await conn.fetchval(sql, *args):
        assert time.monotonic() < end, f"not reached in {deadline}s: {sql}"
        await asyncio.sleep(0.02)


async def test_usage_comes_from_the_rollup_every_insert_reaches(
    conn: asyncpg.Connection,
) -> None:
    user_id = 900_100_001
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    writer = LogWriter(batch_size=50, writers=4)
    for i in range(600):  # concurrent COPY batches upserting the same slots
        writer.insert_log(_row(user_id, noon - timedelta(days=i % 2), cost=7, status=200))
    writer.insert_log(_row(user_id, noon, cost=0, status=429))
    await writer.flush()
    # Crash recovery (and anything else) inserts with plain INSERT: counted as well.
    await conn.execute(
        "INSERT INTO router_logs (request_id, user_id, token_id, path, ability, status_code,"
        " cost, created_at) VALUES ('r-1', $1, NULL, '/p', 'vod.play', 200, 11, $2)",
        user_id,
        noon,
    )
    await catch_up()  # what the rollup job does every few seconds
    slots = await conn.fetchval("SELECT count(*) FROM router_log_usage WHERE user_id = $1", user_id)
    assert slots == 3  # 602 calls, 3 (slot, token, ability) rows: what a report reads
    # The raw rows go (as retention drops them); the answer stays: it never read them.
    await conn.execute("DELETE FROM router_logs WHERE user_id = $1", user_id)
    usage = await daily_usage(user_id, noon - timedelta(days=3), noon + timedelta(days=1))
    rows = [(u["day"], u["ability"], u["calls"], u["succeeded"], u["cost"]) for u in usage]
    assert rows == [
        ((noon - timedelta(days=1)).date(), "catalog.search", 300, 300, 2100),
        (noon.date(), "catalog.search", 301, 300, 2100),
        (noon.date(), "vod.play", 1, 1, 11),
    ]
    by_token = await daily_usage(user_id, noon, noon + timedelta(hours=1), token_id=1)
    assert [(u["ability"], u["calls"]) for u in by_token] == [("catalog.search", 301)]


async def test_local_days_split_at_half_hour_offsets() -> None:
    # Asia/Kolkata is UTC+05:30: 18:20 UTC is 23:50 there, 18:40 UTC is 00:10 next day.
    user_id = 900_100_002
    day = datetime.now(UTC).replace(hour=18, minute=0, second=0, microsecond=0)
    writer = LogWriter()
    writer.insert_log(_row(user_id, day + timedelta(minutes=20)))
    writer.insert_log(_row(user_id, day + timedelta(minutes=40)))
    await writer.flush()
    usage = await daily_usage(
        user_id, day - timedelta(days=1), day + timedelta(days=1), tz="Asia/Kolkata"
    )
    assert [(u["day"], u["calls"]) for u in usage] == [
        (day.date(), 1),
        (day.date() + timedelta(days=1), 1),
    ]


def test_usage_window_widens_to_whole_slots() -> None:
    since = datetime(2026, 3, 1, 10, 7, 3, tzinfo=UTC)
    until = datetime(2026, 3, 2, 10, 44, tzinfo=UTC)
    assert usage_window(since, until) == (
        datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 45, tzinfo=UTC),
    )
    exact = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert usage_window(exact, exact + timedelta(minutes=15)) == (
        exact,
        exact + timedelta(minutes=15),
    )


async def _old_partition(months_back: int, user_id: int) -> tuple[str, datetime]:
    month = add_months(month_start(datetime.now(UTC)), -months_back)
    at = datetime(month.year, month.month, 3, tzinfo=UTC)
    writer = LogWriter()
    writer.insert_log(_row(user_id, at))
    await writer.flush()  # no partition for that month: the writer creates it
    assert writer.written == 1
    return f"router_logs_{month:%Y%m}", at


async def test_detach_does_not_queue_readers_behind_a_long_log_query(
    pool: asyncpg.Pool,
) -> None:
    name, _ = await _old_partition(50, 900_100_003)
    async with pool.acquire() as reader, pool.acquire() as probe, pool.acquire() as later:
        long_query = reader.transaction(isolation="repeatable_read")
        await long_query.start()
        assert await reader.fetchval("SELECT count(*) FROM router_logs") >= 1
        job = asyncio.create_task(
            maintain_partitions(
                ahead=2,
                retention_months=49,
                usage_retention_months=KEEP_USAGE,
                lock_timeout=timedelta(seconds=30),
            )
        )
        try:
            # The job waits for the long query (a lock wait on its DETACH) ...
            await _poll(
                probe,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'ALTER TABLE router_logs DETACH PARTITION%')",
            )
            # ... and meanwhile new readers of router_logs are served, not queued behind it.
            await later.execute("SET statement_timeout = 3000")
            assert await later.fetchval("SELECT count(*) FROM router_logs WHERE user_id = -1") == 0
        finally:
            await long_query.rollback()
        report = await asyncio.wait_for(job, 30)
    assert report.dropped == [name]
    async with pool.acquire() as c:
        assert await c.fetchval("SELECT to_regclass($1)", name) is None


async def test_ddl_gives_up_on_a_lock_after_its_timeout_and_retries(pool: asyncpg.Pool) -> None:
    month = add_months(month_start(datetime.now(UTC)), -60)
    at = datetime(month.year, month.month, 1, tzinfo=UTC)
    async with pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE router_logs IN SHARE UPDATE EXCLUSIVE MODE")
        with pytest.raises(AppError) as caught:
            await asyncio.wait_for(  # a DDL without lock_timeout would wait for good
                ensure_partitions([at], lock_timeout=timedelta(milliseconds=50), attempts=3), 20
            )
        assert caught.value.retryable  # a lock timeout, not a hang and not a 500
        await tx.rollback()
    assert await ensure_partitions([at]) == [f"router_logs_{month:%Y%m}"]
    # Leave no old partition behind for the other tests' retention runs.
    await maintain_partitions(ahead=2, retention_months=59, usage_retention_months=KEEP_USAGE)


async def test_retention_reads_the_config(conn: asyncpg.Connection) -> None:
    old_name, _ = await _old_partition(30, 900_100_004)
    recent_name, _ = await _old_partition(20, 900_100_004)
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO router_log_usage (user_id, bucket, ability, calls, succeeded, cost)"
        " VALUES (900100005, $1, 'a', 1, 1, 1), (900100005, $2, 'b', 1, 1, 1)",
        now - timedelta(days=31 * 11),
        now - timedelta(days=31 * 8),
    )
    old_at, recent_at = now - timedelta(days=31 * 30), now - timedelta(days=31 * 20)
    await ensure_partitions([old_at, recent_at], table="quota_deductions")
    await conn.execute(
        "INSERT INTO quota_deductions (request_id, user_id, token_id, amount, created_at)"
        " SELECT 'old-' || g, 900100005, 1, 1, $1 FROM generate_series(1, 12000) g",
        old_at,
    )
    await conn.execute(
        "INSERT INTO quota_deductions (request_id, user_id, token_id, amount, created_at)"
        " VALUES ('recent-900100005', 900100005, 1, 1, $1)",
        recent_at,
    )
    service = OpenApi(OpenApiConfig(log_retention_months=24, usage_retention_months=10))
    await service.maintain()
    assert await conn.fetchval("SELECT to_regclass($1)", old_name) is None
    assert await conn.fetchval("SELECT to_regclass($1)", recent_name) is not None
    usage = await conn.fetch(
        "SELECT ability FROM router_log_usage WHERE user_id = 900100005 ORDER BY 1"
    )
    assert [r["ability"] for r in usage] == ["b"]
    left = await conn.fetch("SELECT request_id FROM quota_deductions WHERE user_id = 900100005")
    assert [r["request_id"] for r in left] == ["recent-900100005"]  # the old month dropped
    await maintain_partitions(ahead=2, retention_months=19, usage_retention_months=KEEP_USAGE)


async def test_config_version_gauge_follows_the_database(conn: asyncpg.Connection) -> None:
    service = OpenApi(OpenApiConfig(config_poll_interval_seconds=0.05))
    await service.start()
    try:
        # A change made elsewhere (another node, plain SQL): this node's gauge follows it.
        await conn.execute("UPDATE user_groups SET name = name WHERE false")
        version = await conn.fetchval("SELECT version FROM open_api_config_version")
        end = time.monotonic() + 10
        while service.router.config.version != version:
            assert time.monotonic() < end, "the refresher never saw the new version"
            await asyncio.sleep(0.02)
        text = service.metrics.render().decode()
        assert f"open_api_router_config_version {float(version)}" in text
    finally:
        await service.stop()
