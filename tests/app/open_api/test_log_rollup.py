"""The usage rollup stays the exact aggregate of the raw log rows, whoever writes them.

The log writer copies its batches into the month partitions (no trigger) and upserts
the groups it summed in Python in the same transaction; crash recovery's INSERT into
router_logs is counted by the trigger (migration 0047). Each test compares
router_log_usage with the trigger's own GROUP BY over router_logs, for users of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from app.open_api.logs import LogRow, LogWriter
from app.open_api.partitions import add_months, month_start
from app.open_api.recovery import recover
from app.open_api.rollup import slot_of

USERS = range(900_300_001, 900_300_006)

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


def test_slots_are_the_triggers_date_bin() -> None:
    at = datetime(2026, 3, 1, 8, 29, 59, 999_999, tzinfo=UTC)
    assert slot_of(at) == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)
    assert slot_of(at + timedelta(microseconds=1)) == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    # Another zone: the same instant, the same UTC slot.
    shanghai = at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert slot_of(shanghai) == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)


async def test_the_rollup_is_the_aggregate_of_mixed_writer_batches(
    conn: asyncpg.Connection,
) -> None:
    users = list(USERS[:4])
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    # Two writers (two service processes) of 4 concurrent batches of 20 each: every
    # batch repeats keys, and the writers add to the same rollup rows at once.
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
    assert rollup == raw
    assert len(raw) > 30  # many keys, none of them trivially empty
    assert {r[3] for r in raw} == {"catalog.search", "vod.play"}
    assert {r[2] for r in raw} == {0, 1, 2}
    assert any(r[4] != r[5] for r in raw)  # failures counted apart


async def test_a_batch_and_its_rollup_commit_together(conn: asyncpg.Connection) -> None:
    # A call whose cost would overflow its key's rollup cost (bigint): the batch's upsert
    # fails, and its COPY must go with it. Written again one by one, that row is refused
    # whole (row and usage) and its batch-mate lands with its usage.
    user = USERS[4]
    at = datetime.now(UTC)
    big = 2**62 + 2**61
    writer = LogWriter(batch_size=10)
    writer.insert_log(_row(user, at, cost=big))
    await writer.flush()
    writer.insert_log(_row(user, at, cost=big))
    writer.insert_log(_row(user, at, ability="vod.play", cost=5))
    await writer.flush()
    assert (writer.written, writer.failed) == (2, 1)
    rollup, raw = await _rollup_and_raw(conn, [user])
    assert rollup == raw
    assert [(r[3], r[4], r[6]) for r in raw] == [("catalog.search", 1, big), ("vod.play", 1, 5)]


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
    rollup, raw = await _rollup_and_raw(conn, [user])
    assert rollup == raw
    # One key: 4 calls; the writer's cost 300, the rebuilt ones 300 + 300 + 0 (refunded).
    assert [(r[2], r[3], r[4], r[6]) for r in raw] == [(7, "vod.play", 4, 900)]
    assert raw[0][1] == slot_of(at)
