"""Requirements 11, 12, 14: non-blocking logging, flush on shutdown, indexed listing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.open_api import logs
from app.open_api.logs import LogFilter, LogRow, LogWriter, daily_usage, log_query, query_logs
from app.open_api.metrics import OpenApiMetrics
from app.open_api.partitions import add_months, maintain_partitions, month_start
from luser_common import DatabaseUnavailable
from luser_db import CommitUncertain, InvalidCursor


def _row(
    user_id: int,
    *,
    channel_id: int | None = 1,
    cost: int = 5,
    at: datetime | None = None,
    status: int = 200,
) -> LogRow:
    return LogRow(
        request_id=uuid.uuid4().hex,
        user_id=user_id,
        token_id=1,
        path="/open/v1/videos",
        ability="catalog.search",
        channel_id=channel_id,
        failed_channel_ids=None,
        status_code=status,
        error_code=None,
        latency_ms=3,
        units=1,
        cost=cost,
        client_ip="10.0.0.1",
        created_at=at or datetime.now(UTC),
    )


async def _count(conn: asyncpg.Connection, user_id: int) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM router_logs WHERE user_id = $1", user_id))


async def test_overflow_is_counted_and_never_blocks(conn: asyncpg.Connection) -> None:
    metrics = OpenApiMetrics()
    writer = LogWriter(queue_size=10, batch_size=100, flush_interval=60, metrics=metrics)
    user_id = 900_000_001
    accepted = [writer.insert_log(_row(user_id)) for _ in range(25)]  # writer not started: no drain
    assert accepted.count(True) == 10 and writer.dropped == 15
    text = metrics.render().decode()
    assert 'open_api_logs_dropped_total{reason="queue_full"} 15.0' in text
    assert "open_api_log_queue_depth 10.0" in text
    await writer.stop()
    assert await _count(conn, user_id) == 10
    assert "open_api_logs_written_total 10.0" in metrics.render().decode()


async def test_shutdown_flushes_every_queued_row(conn: asyncpg.Connection) -> None:
    writer = LogWriter(queue_size=10_000, batch_size=1_000, flush_interval=3600)
    await writer.start()
    user_id = 900_000_002
    for _ in range(2_500):
        assert writer.insert_log(_row(user_id))
    await writer.stop()
    assert writer.depth == 0
    assert await _count(conn, user_id) == 2_500


async def test_writer_flushes_on_interval(conn: asyncpg.Connection) -> None:
    import asyncio

    writer = LogWriter(queue_size=100, batch_size=100, flush_interval=0.05)
    await writer.start()
    user_id = 900_000_003
    writer.insert_log(_row(user_id))
    try:
        for _ in range(200):
            if await _count(conn, user_id) == 1:
                break
            await asyncio.sleep(0.02)
        assert await _count(conn, user_id) == 1
    finally:
        await writer.stop()


async def test_transient_write_failures_are_retried(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = logs._copy
    failures = [2]

    async def flaky(rows: Any) -> int:
        if failures[0] > 0:  # what luser_db raises when no connection can be had
            failures[0] -= 1
            raise DatabaseUnavailable("injected: connection lost")
        return await real(rows)

    monkeypatch.setattr(logs, "_copy", flaky)
    monkeypatch.setattr(logs, "_backoff", _no_wait)
    metrics = OpenApiMetrics()
    writer = LogWriter(queue_size=100, batch_size=100, flush_interval=3600, metrics=metrics)
    user_id = 900_000_004
    for _ in range(7):
        writer.insert_log(_row(user_id))
    await writer.flush()
    assert await _count(conn, user_id) == 7
    assert "open_api_log_flush_retries_total 2.0" in metrics.render().decode()


async def test_persistent_write_failure_is_counted_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(rows: Any) -> int:
        raise DatabaseUnavailable("injected: database down")

    monkeypatch.setattr(logs, "_copy", down)
    monkeypatch.setattr(logs, "_backoff", _no_wait)
    metrics = OpenApiMetrics()
    writer = LogWriter(queue_size=100, batch_size=100, max_retries=2, metrics=metrics)
    for _ in range(4):
        writer.insert_log(_row(900_000_005))
    await writer.flush()
    assert writer.failed == 4 and writer.written == 0
    assert 'open_api_logs_dropped_total{reason="write_failed"} 4.0' in metrics.render().decode()
    assert "open_api_log_flush_retries_total 2.0" in metrics.render().decode()


async def test_a_copy_lost_mid_flight_is_not_written_twice(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows may be in already: a second COPY could duplicate them (and double-count
    # usage); recovery rebuilds the rows of charged calls that are really missing.
    calls = [0]

    async def lost(rows: Any) -> int:
        calls[0] += 1
        raise CommitUncertain()

    monkeypatch.setattr(logs, "_copy", lost)
    metrics = OpenApiMetrics()
    writer = LogWriter(queue_size=100, batch_size=100, metrics=metrics)
    for _ in range(3):
        writer.insert_log(_row(900_000_015))
    await writer.flush()
    assert calls == [1] and writer.failed == 3
    assert 'open_api_logs_dropped_total{reason="error"} 3.0' in metrics.render().decode()


def _no_wait(attempt: int) -> float:
    return 0.0


async def test_a_refused_row_does_not_sink_its_batch(conn: asyncpg.Connection) -> None:
    writer = LogWriter(queue_size=100, batch_size=100)
    user_id = 900_000_006
    writer.insert_log(_row(user_id))
    writer.insert_log(_row(user_id)._replace(path=None))  # type: ignore[arg-type]  # NOT NULL
    writer.insert_log(_row(user_id))
    await writer.flush()
    assert (writer.written, writer.failed) == (2, 1)
    assert await _count(conn, user_id) == 2


async def test_keyset_pagination_and_filters(conn: asyncpg.Connection) -> None:
    writer = LogWriter(queue_size=1_000, batch_size=1_000)
    user_id = 900_000_007
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for i in range(23):
        writer.insert_log(
            _row(user_id, at=base + timedelta(seconds=i // 2), status=200 if i % 3 else 500)
        )
    await writer.flush()
    seen: list[int] = []
    _, cursor = await query_logs(LogFilter(user_id=user_id), limit=5)
    assert cursor is not None
    edited = ("B" if cursor[0] != "B" else "C") + cursor[1:]  # the signed body changed
    for forged in (edited, "2026|5"):
        with pytest.raises(InvalidCursor) as info:  # signed: an edited cursor is refused
            await query_logs(LogFilter(user_id=user_id), cursor=forged, limit=5)
        assert (info.value.status_code, info.value.field) == (422, "cursor")
    cursor = None
    while True:
        items, cursor = await query_logs(LogFilter(user_id=user_id), cursor=cursor, limit=5)
        seen.extend(r["id"] for r in items)
        keys = [(r["created_at"], r["id"]) for r in items]
        assert keys == sorted(keys, reverse=True)
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 23
    failed, _ = await query_logs(LogFilter(user_id=user_id, status_code=500), limit=100)
    assert len(failed) == 8
    window, _ = await query_logs(
        LogFilter(
            user_id=user_id, since=base + timedelta(seconds=5), until=base + timedelta(seconds=7)
        ),
        limit=100,
    )
    assert len(window) == 4


async def test_daily_usage_totals(conn: asyncpg.Connection) -> None:
    writer = LogWriter(queue_size=1_000, batch_size=1_000)
    user_id = 900_000_008
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for i in range(10):
        writer.insert_log(_row(user_id, cost=7, at=day - timedelta(days=i % 2)))
    writer.insert_log(_row(user_id, cost=0, at=day, status=429))
    await writer.flush()
    usage = await daily_usage(user_id, day - timedelta(days=3), day + timedelta(days=1))
    assert [(u["day"], u["calls"], u["succeeded"], u["cost"]) for u in usage] == [
        ((day - timedelta(days=1)).date(), 5, 5, 35),
        (day.date(), 6, 5, 35),
    ]


async def test_partition_maintenance_creates_and_drops(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    future = add_months(month_start(now), 30)
    keep = {"usage_retention_months": 120}  # other tests' usage rows stay
    report = await maintain_partitions(
        ahead=1,
        retention_months=120,
        now=datetime(future.year, future.month, 2, tzinfo=UTC),
        **keep,
    )
    assert f"router_logs_{future:%Y%m}" in report.created
    again = await maintain_partitions(
        ahead=1,
        retention_months=120,
        now=datetime(future.year, future.month, 2, tzinfo=UTC),
        **keep,
    )
    assert again.created == []
    # A row whose month has no partition: the writer creates it and writes again.
    later = add_months(future, 3)
    writer = LogWriter()
    writer.insert_log(_row(900_000_009, at=datetime(later.year, later.month, 5, tzinfo=UTC)))
    await writer.flush()
    assert writer.written == 1 and writer.failed == 0
    assert (
        await conn.fetchval(
            f"SELECT count(*) FROM router_logs_{later:%Y%m} WHERE user_id = 900000009"
        )
        == 1
    )
    # With a 1-month retention seen from 30 months ahead, today's partitions are expired:
    # detached and dropped; the ones inside the window are kept.
    report = await maintain_partitions(
        ahead=0, retention_months=1, now=datetime(future.year, future.month, 1, tzinfo=UTC), **keep
    )
    assert f"router_logs_{month_start(now):%Y%m}" in report.dropped
    assert f"router_logs_{future:%Y%m}" not in report.dropped
    assert f"router_logs_{later:%Y%m}" not in report.dropped
    gone = f"router_logs_{month_start(now):%Y%m}"
    assert await conn.fetchval("SELECT to_regclass($1)", gone) is None
    assert await conn.fetchval("SELECT to_regclass($1)", f"router_logs_{future:%Y%m}") is not None
    # Put back what the rest of the session needs.
    await maintain_partitions(ahead=2, retention_months=240, now=now, **keep)


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


@pytest.mark.slow
async def test_listing_uses_indexes_on_a_large_table(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    await maintain_partitions(
        ahead=2, retention_months=240, now=datetime(*_months_ago(now, 3), 1, tzinfo=UTC)
    )
    # 400k rows over 3 months, 2,000 users, 40 channels: far too many to scan for one page.
    await conn.execute(
        """INSERT INTO router_logs (request_id, user_id, token_id, path, ability, channel_id,
                                    status_code, latency_ms, units, cost, created_at)
           SELECT 'synthetic-' || g, 800000000 + g % 2000, g % 5000, '/open/v1/videos',
                  'catalog.search', 800000 + g % 40, CASE WHEN g % 10 = 0 THEN 500 ELSE 200 END,
                  g % 300, 1, 1000, now() - (g * 19) * interval '1 second'
           FROM generate_series(1, 400000) AS g"""
    )
    await conn.execute("ANALYZE router_logs")
    populated = [
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'router_logs'::regclass AND c.reltuples > 10000"
        )
    ]
    assert len(populated) >= 3  # the rows span several monthly partitions
    cases = [
        # A partner's pages: the primary key (user_id, created_at, id), migration 0045.
        (LogFilter(user_id=800_000_123), "pkey"),
        (LogFilter(channel_id=800_007, since=now - timedelta(days=2)), "channel_id_created_at"),
        (
            LogFilter(user_id=800_000_123, since=now - timedelta(days=10), until=now),
            "pkey",
        ),
    ]
    for flt, index_hint in cases:
        for after in (None, (now - timedelta(days=1), 10**12)):
            query = log_query(flt)
            if after is not None:  # the condition a keyset cursor adds (luser_db.keyset)
                query = query.where("(created_at, id) < (?, ?)", *after)
            sql, args = query.limit(51).to_sql()
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
            nodes = _plan_nodes(plan)
            scans = [n for n in nodes if "Scan" in n["Node Type"]]
            assert scans, plan
            assert not [n for n in scans if n["Node Type"] == "Seq Scan"], plan
            # Every populated partition is read through the (key, created_at) index;
            # empty ones may use any index (the planner costs them at ~0).
            indexes = [n["Index Name"] for n in nodes if "Index Name" in n]
            for part in populated:
                mine = [name for name in indexes if name.startswith(part + "_")]
                assert all(index_hint in name for name in mine), (part, index_hint, indexes)


def _months_ago(now: datetime, n: int) -> tuple[int, int]:
    m = add_months(month_start(now), -n)
    return m.year, m.month


async def test_service_stop_flushes_queued_rows(conn: asyncpg.Connection) -> None:
    from app.open_api.service import OpenApi
    from app.settings import OpenApiConfig

    service = OpenApi(OpenApiConfig(log_flush_interval_seconds=60, log_batch_size=10_000))
    await service.start()
    user_id = 900_000_010
    for _ in range(1_234):
        service.logs.insert_log(_row(user_id))
    assert await _count(conn, user_id) == 0  # nothing flushed yet: no size or interval trigger
    await service.stop()
    assert await _count(conn, user_id) == 1_234
