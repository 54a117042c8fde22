"""Issue 19 item 4: quota_deductions partitioned by month, exactly-once across months.

The table's key is (request_id, created_at), so exactly-once rests on
open_api_charge()'s advisory lock and its lookup over every partition. The month
boundary is crossed with real rows: a real charge whose row is then moved into last
month's partition (an UPDATE of the partition key moves the row).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from app.open_api.partitions import (
    DEDUCTIONS,
    add_months,
    ensure_partitions,
    maintain_partitions,
    month_start,
)
from app.open_api.quota import CallRecord, Deduction, deduct_quota

from .conftest import MakeToken, MakeUser

PRICE = 1_000
CALL = CallRecord(fingerprint=b"same request", keyed=True)


def _months_back(months: int) -> datetime:
    """Noon on the 3rd of the month ``months`` before this one (UTC)."""
    month = add_months(month_start(datetime.now(UTC)), -months)
    return datetime(month.year, month.month, 3, 12, tzinfo=UTC)


async def _move(conn: asyncpg.Connection, request_id: str, at: datetime) -> None:
    """Move a charge's row to ``at``'s month: the boundary, crossed with a real row."""
    await ensure_partitions([at], table=DEDUCTIONS)
    moved = await conn.execute(
        "UPDATE quota_deductions SET created_at = $2 WHERE request_id = $1", request_id, at
    )
    assert moved == "UPDATE 1"


async def _charges(conn: asyncpg.Connection, request_id: str) -> list[tuple[str, int]]:
    """(partition, amount) of every row of ``request_id``."""
    rows = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, amount FROM quota_deductions "
        "WHERE request_id = $1 ORDER BY created_at",
        request_id,
    )
    return [(r["part"], r["amount"]) for r in rows]


async def _balance(conn: asyncpg.Connection, user_id: int) -> int:
    balance: int = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    return balance


@pytest.mark.parametrize("retry", ["new attempt", "same attempt"])
async def test_a_key_charged_last_month_is_replayed_this_month(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, retry: str
) -> None:
    user_id = await make_user(balance=10 * PRICE)
    token_id, _ = await make_token(user_id)
    request_id, first_attempt = f"{user_id}:{uuid.uuid4().hex}", uuid.uuid4().hex
    await deduct_quota(user_id, token_id, PRICE, request_id, attempt=first_attempt, call=CALL)
    last_month = _months_back(1)
    await _move(conn, request_id, last_month)
    # A client retry (same Idempotency-Key, new attempt) or the same attempt after a
    # lost reply, both arriving this month.
    attempt = uuid.uuid4().hex if retry == "new attempt" else first_attempt
    again = await deduct_quota(user_id, token_id, PRICE, request_id, attempt=attempt, call=CALL)
    assert again.replayed is (retry == "new attempt")  # the same attempt owns its charge
    assert again.amount == PRICE
    assert await _charges(conn, request_id) == [(f"quota_deductions_{last_month:%Y%m}", PRICE)]
    assert await _balance(conn, user_id) == 9 * PRICE


async def _waiting_on_a_lock(
    conn: asyncpg.Connection, pid: int, task: asyncio.Task[object]
) -> None:
    """Until the charge in ``task`` waits on a lock held by ``pid`` (or has ended):
    a bounded poll of the server's state, not a sleep standing in for an order."""
    deadline = time.monotonic() + 10
    while not task.done():
        waiting = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%open_api_charge(%')",
            pid,
        )
        if waiting:
            return
        assert time.monotonic() < deadline, "the second charge never waited for the first"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("retry", ["new attempt", "same attempt"])
async def test_concurrent_attempts_across_the_boundary_charge_once(
    pool: asyncpg.Pool, make_user: MakeUser, make_token: MakeToken, retry: str
) -> None:
    user_id = await make_user(balance=10 * PRICE)
    token_id, _ = await make_token(user_id)
    request_id, first_attempt = f"{user_id}:{uuid.uuid4().hex}", uuid.uuid4().hex
    last_month = _months_back(1)
    await ensure_partitions([last_month], table=DEDUCTIONS)
    async with pool.acquire() as first, pool.acquire() as probe:
        # The first attempt charges and, still uncommitted, lands in last month.
        held = first.transaction()
        await held.start()
        charged = await first.fetchrow(
            "SELECT * FROM open_api_charge($1, $2, $3, $4, 'on', $5, $6, true, NULL, NULL, NULL)",
            request_id,
            user_id,
            token_id,
            PRICE,
            first_attempt,
            CALL.fingerprint,
        )
        assert charged is not None and charged["outcome"] == "charged"
        await first.execute(
            "UPDATE quota_deductions SET created_at = $2 WHERE request_id = $1",
            request_id,
            last_month,
        )
        # The second attempt, this month, while the first is in flight.
        attempt = uuid.uuid4().hex if retry == "new attempt" else first_attempt
        second: asyncio.Task[Deduction] = asyncio.create_task(
            deduct_quota(user_id, token_id, PRICE, request_id, attempt=attempt, call=CALL)
        )
        try:
            await _waiting_on_a_lock(probe, first.get_server_pid(), second)
        finally:
            await held.commit()
        again = await asyncio.wait_for(second, 10)
        assert again.replayed is (retry == "new attempt")
        assert await _charges(probe, request_id) == [(f"quota_deductions_{last_month:%Y%m}", PRICE)]
        assert await _balance(probe, user_id) == 9 * PRICE


async def test_a_charge_without_a_partition_for_its_month_creates_it(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=10 * PRICE)
    token_id, _ = await make_token(user_id)
    now = await conn.fetchval("SELECT now()")
    current = f"quota_deductions_{month_start(now.astimezone(UTC)):%Y%m}"
    # This month's partition goes away (detached, so the session's rows in it survive).
    await conn.execute(f'ALTER TABLE quota_deductions DETACH PARTITION "{current}"')
    request_id = f"{user_id}:{uuid.uuid4().hex}"
    charged = await deduct_quota(user_id, token_id, PRICE, request_id)
    assert not charged.replayed and charged.balance_after == 9 * PRICE
    assert await _charges(conn, request_id) == [(current, PRICE)]


async def test_retention_drops_a_month_and_forgets_its_keys(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=10 * PRICE)
    token_id, _ = await make_token(user_id)
    expired, kept = f"{user_id}:expired", f"{user_id}:kept"
    for request_id in (expired, kept):
        await deduct_quota(user_id, token_id, PRICE, request_id, call=CALL)
    expired_at, kept_at = _months_back(41), _months_back(40)
    await _move(conn, expired, expired_at)
    await _move(conn, kept, kept_at)
    report = await maintain_partitions(ahead=2, retention_months=40, usage_retention_months=120)
    assert f"quota_deductions_{expired_at:%Y%m}" in report.dropped
    assert f"quota_deductions_{kept_at:%Y%m}" not in report.dropped
    assert (
        await conn.fetchval("SELECT to_regclass($1)", f"quota_deductions_{expired_at:%Y%m}") is None
    )
    assert await _charges(conn, kept) == [(f"quota_deductions_{kept_at:%Y%m}", PRICE)]
    # A key of a dropped month is forgotten: charged again (documented, as with the
    # pruning by date before). A key of a kept month is still replayed.
    assert not (await deduct_quota(user_id, token_id, PRICE, expired, call=CALL)).replayed
    assert (await deduct_quota(user_id, token_id, PRICE, kept, call=CALL)).replayed
    assert await _balance(conn, user_id) == 7 * PRICE
    # Leave no old partition behind for the other tests' retention runs.
    await maintain_partitions(ahead=2, retention_months=39, usage_retention_months=120)
