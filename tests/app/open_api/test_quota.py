"""Requirements 1, 3, 4, 5, 6: deductions under concurrency, atomicity, idempotency, retries."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

import luser_db
from app.open_api import quota
from app.open_api.errors import DeductionFailed, InsufficientBalance, QuotaExceeded
from app.open_api.quota import deduct_quota
from luser_common import AppError
from luser_db import sqlstate

from .conftest import MakeToken, MakeUser


async def _state(conn: asyncpg.Connection, user_id: int, token_id: int) -> tuple[int, int, int]:
    balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    used = await conn.fetchval("SELECT used_quota FROM api_tokens WHERE id = $1", token_id)
    rows = await conn.fetchval("SELECT count(*) FROM quota_deductions WHERE user_id = $1", user_id)
    return balance, used, rows


async def _attempt(user_id: int, token_id: int, cost: int) -> str:
    try:
        await deduct_quota(user_id, token_id, cost, uuid.uuid4().hex)
    except InsufficientBalance:
        return "balance"
    except QuotaExceeded:
        return "quota"
    return "ok"


@pytest.mark.parametrize(
    ("balance", "limit", "cost", "calls"),
    [
        (1_000, 100_000, 37, 96),  # the wallet runs out first
        (100_000, 1_000, 37, 96),  # the token limit runs out first
        (740, 740, 37, 64),  # exact fit: 20 admitted, nothing left
    ],
)
async def test_no_overdraft_under_concurrency(
    conn: asyncpg.Connection,
    make_user: MakeUser,
    make_token: MakeToken,
    balance: int,
    limit: int,
    cost: int,
    calls: int,
) -> None:
    user_id = await make_user(balance=balance)
    token_id, _ = await make_token(user_id, quota_limit=limit)
    outcomes = await asyncio.gather(*(_attempt(user_id, token_id, cost) for _ in range(calls)))
    admitted = outcomes.count("ok")
    assert admitted == min(balance, limit) // cost
    new_balance, used, rows = await _state(conn, user_id, token_id)
    assert new_balance == balance - admitted * cost >= 0
    assert used == admitted * cost <= limit
    assert rows == admitted


async def test_unlimited_token_still_debits_the_wallet(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=100)
    token_id, _ = await make_token(user_id, quota_limit=-1)
    await deduct_quota(user_id, token_id, 60, "unlimited-1")
    with pytest.raises(InsufficientBalance):
        await deduct_quota(user_id, token_id, 60, "unlimited-2")
    assert await _state(conn, user_id, token_id) == (40, 60, 1)


@pytest.mark.parametrize("errcode", ["XX000", "57014"])  # internal error, query cancelled
async def test_failure_between_wallet_and_token_writes_leaves_neither(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, errcode: str
) -> None:
    # The fault fires inside the token write, after the wallet row was updated.
    user_id = await make_user(balance=1_000)
    token_id, _ = await make_token(user_id, quota_limit=1_000)
    await conn.execute(
        f"""CREATE FUNCTION fail_token_{token_id}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT balance FROM users WHERE id = {user_id}) <> 900 THEN
                RAISE EXCEPTION 'fault fired before the wallet write';
            END IF;
            RAISE EXCEPTION 'injected fault' USING ERRCODE = '{errcode}';
        END $$"""
    )
    await conn.execute(
        f"CREATE TRIGGER fail_token_{token_id} BEFORE UPDATE OF used_quota ON api_tokens "
        f"FOR EACH ROW WHEN (OLD.id = {token_id}) EXECUTE FUNCTION fail_token_{token_id}()"
    )
    try:
        with pytest.raises(AppError) as info:  # a luser error, never the driver's
            await deduct_quota(user_id, token_id, 100, f"db-fault-{token_id}")
        assert sqlstate(info.value) == errcode
        assert "injected fault" in str(info.value.__cause__)
    finally:
        await conn.execute(f"DROP TRIGGER fail_token_{token_id} ON api_tokens")
    assert await _state(conn, user_id, token_id) == (1_000, 0, 0)


async def test_parallel_replays_charge_once(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=10_000)
    token_id, _ = await make_token(user_id, quota_limit=10_000)
    results = await asyncio.gather(
        *(deduct_quota(user_id, token_id, 250, "replay-me") for _ in range(32))
    )
    assert sum(not r.replayed for r in results) == 1
    assert all(r.amount == 250 for r in results)
    assert await _state(conn, user_id, token_id) == (9_750, 250, 1)
    again = await deduct_quota(user_id, token_id, 250, "replay-me")
    assert again.replayed
    assert await _state(conn, user_id, token_id) == (9_750, 250, 1)


async def test_request_id_reused_for_another_amount_is_refused(
    make_user: MakeUser, make_token: MakeToken
) -> None:
    from luser_common import Conflict

    user_id = await make_user(balance=10_000)
    token_id, _ = await make_token(user_id)
    await deduct_quota(user_id, token_id, 5, "reuse-1")
    with pytest.raises(Conflict):
        await deduct_quota(user_id, token_id, 6, "reuse-1")


async def _fault_trigger(
    conn: asyncpg.Connection, name: str, user_id: int, failures: int, errcode: str
) -> None:
    # A sequence is not transactional: it counts attempts across rolled-back ones.
    await conn.execute(f"CREATE SEQUENCE {name}_seq")
    await conn.execute(
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('{name}_seq') <= {failures} THEN
                RAISE EXCEPTION 'injected transient failure' USING ERRCODE = '{errcode}';
            END IF;
            RETURN NEW;
        END $$"""
    )
    await conn.execute(
        f"CREATE TRIGGER {name} BEFORE UPDATE OF balance ON users FOR EACH ROW "
        f"WHEN (OLD.id = {user_id}) EXECUTE FUNCTION {name}()"
    )


@pytest.mark.parametrize("errcode", ["40001", "40P01"])
async def test_transient_failures_are_retried(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, errcode: str
) -> None:
    user_id = await make_user(balance=1_000)
    token_id, _ = await make_token(user_id)
    name = f"flaky_{errcode.lower()}_{user_id}"
    await _fault_trigger(conn, name, user_id, failures=2, errcode=errcode)
    try:
        result = await deduct_quota(user_id, token_id, 10, f"flaky-{user_id}")
    finally:
        await conn.execute(f"DROP TRIGGER {name} ON users")
    assert not result.replayed
    assert await _state(conn, user_id, token_id) == (990, 10, 1)


async def test_persistent_transient_failure_surfaces(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=1_000)
    token_id, _ = await make_token(user_id)
    name = f"broken_{user_id}"
    await _fault_trigger(conn, name, user_id, failures=1_000, errcode="40001")
    try:
        with pytest.raises(DeductionFailed) as info:
            await deduct_quota(user_id, token_id, 10, f"broken-{user_id}", retries=3)
    finally:
        await conn.execute(f"DROP TRIGGER {name} ON users")
    assert sqlstate(info.value) == "40001"  # the serialization failure, through luser_db
    assert info.value.retryable
    assert await _state(conn, user_id, token_id) == (1_000, 0, 0)
    # The caller retries with the same request_id once the fault is gone: charged once.
    await deduct_quota(user_id, token_id, 10, f"broken-{user_id}")
    assert await _state(conn, user_id, token_id) == (990, 10, 1)


async def test_lost_connection_is_retried_without_double_charge(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=1_000)
    token_id, _ = await make_token(user_id)
    name = f"killer_{user_id}"
    await conn.execute(f"CREATE SEQUENCE {name}_seq")
    await conn.execute(
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('{name}_seq') = 1 THEN
                PERFORM pg_terminate_backend(pg_backend_pid());
            END IF;
            RETURN NEW;
        END $$"""
    )
    await conn.execute(
        f"CREATE TRIGGER {name} BEFORE UPDATE OF used_quota ON api_tokens FOR EACH ROW "
        f"WHEN (OLD.id = {token_id}) EXECUTE FUNCTION {name}()"
    )
    try:
        result = await deduct_quota(user_id, token_id, 10, f"killer-{user_id}")
    finally:
        await conn.execute(f"DROP TRIGGER {name} ON api_tokens")
    assert not result.replayed
    assert await _state(conn, user_id, token_id) == (990, 10, 1)


async def test_refund_is_applied_once(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=1_000)
    token_id, _ = await make_token(user_id, quota_limit=500)
    await deduct_quota(user_id, token_id, 100, "refund-1")
    refunds = await asyncio.gather(*(quota.refund_quota("refund-1") for _ in range(8)))
    assert refunds.count(True) == 1
    assert await _state(conn, user_id, token_id) == (1_000, 0, 1)


async def test_asynchronous_commit_is_scoped_to_the_deduction(
    pool: asyncpg.Pool, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user(balance=100)
    token_id, _ = await make_token(user_id)
    result = await deduct_quota(user_id, token_id, 30, f"async-{user_id}", synchronous_commit=False)
    assert result.balance_after == 70 and result.used_quota_after == 30
    # set_config(..., true) is transaction-local: pooled connections keep the default.
    settings = set()
    async with luser_db.connection(stateless=True) as a, luser_db.connection(stateless=True) as b:
        for c in (a, b):
            settings.add(await c.fetchval("SHOW synchronous_commit"))
    assert settings == {"on"}
