"""Money on the open API, attacked: idempotency keys, lost replies, stale caches, bursts.

Real HTTP (ASGI) against real PostgreSQL and Tencent VOD stubs; the lost reply is a
real cut connection (``FaultProxy``) between the service's pool and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

import luser_db
from app.open_api.quota import CallRecord, deduct_quota
from app.open_api.recovery import recover
from app.open_api.tokens import Invalid, Valid
from app.sandbox.vod import TencentVodStub
from luser_db.testing import server_address, via_local_port

from .faultproxy import FaultProxy
from .service_env import PRICE, Env, flush, partner, play, sk

UPLOAD_PRICE = 20_000_000  # video.upload_auth, seeded by migration 0031

Stubs = tuple[TencentVodStub, TencentVodStub]


def _provider_calls(stubs: Stubs) -> int:
    return sum(len(s.calls("DescribeMediaInfos")) for s in stubs)


async def _state(pool: asyncpg.Pool, user_id: int) -> tuple[int, int, int]:
    """(balance, charges kept, charges refunded) of ``user_id``."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT balance FROM users WHERE id = $1), "
            "count(*) FILTER (WHERE refunded_at IS NULL), "
            "count(*) FILTER (WHERE refunded_at IS NOT NULL) "
            "FROM quota_deductions WHERE user_id = $1",
            user_id,
        )
    assert row is not None
    return row[0], row[1], row[2]


def _data(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def _second_video(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        video_id: int = await conn.fetchval(
            "INSERT INTO videos "
            "(title, provider, media_id, media_status, status, published_at) VALUES "
            "('demo 2', 'tencent', $1, 'ready', 'published', now()) RETURNING id",
            f"5285890781{uuid.uuid4().int % 10**5:05d}",
        )
    return video_id


# -- 1. an idempotency key is bound to its request ------------------------------------


async def test_one_key_buys_one_call_of_one_request(
    env: Env, pool: asyncpg.Pool, stubs: Stubs
) -> None:
    user_id, key, _ = await partner(env, pool, PRICE)  # a wallet worth one call
    other_video = await _second_video(pool)
    k1 = {"Idempotency-Key": f"k1-{uuid.uuid4()}"}
    first = _data(await play(env, key, **k1))
    seen = _provider_calls(stubs)
    # The same request again, sequentially and in a burst: the first answer, no new work.
    assert _data(await play(env, key, **k1)) == first
    burst = await asyncio.gather(*(play(env, key, **k1) for _ in range(30)))
    assert all(_data(r) == first for r in burst)
    # The key on another request: refused, whatever the path.
    other = await env.client.get(f"/open/v1/videos/{other_video}/play_url", headers=sk(key, **k1))
    assert _code(other) == (409, "IDEMPOTENCY_KEY_REUSED")
    search = await env.client.get("/open/v1/videos", headers=sk(key, **k1))
    assert _code(search) == (409, "IDEMPOTENCY_KEY_REUSED")
    too_long = await play(env, key, **{"Idempotency-Key": "k" * 101})
    assert _code(too_long) == (422, "VALIDATION_ERROR")
    assert _provider_calls(stubs) == seen
    assert await _state(pool, user_id) == (0, 1, 0)


async def test_upload_credentials_are_issued_once_per_key(env: Env, pool: asyncpg.Pool) -> None:
    user_id, key, _ = await partner(env, pool, UPLOAD_PRICE)
    await env.service.tokens.validate(key)  # cached: the burst needs no key lookups
    headers = sk(key, **{"Idempotency-Key": str(uuid.uuid4())})
    body = {"title": "t", "file_name": "a.mp4"}
    calls = [env.client.post("/open/v1/uploads", headers=headers, json=body) for _ in range(20)]
    results = await asyncio.gather(*calls)
    # One does the work; the others replay it, or hear that it is still running.
    assert {r.status_code for r in results} <= {200, 409}
    assert all(
        _code(r) == (409, "IDEMPOTENCY_KEY_IN_PROGRESS") for r in results if r.status_code == 409
    )
    replayed = _data(await env.client.post("/open/v1/uploads", headers=headers, json=body))
    signatures = {_data(r)["signature"] for r in results if r.status_code == 200}
    assert signatures <= {replayed["signature"]}
    changed = {"title": "t", "file_name": "b.mp4"}
    r = await env.client.post("/open/v1/uploads", headers=headers, json=changed)
    assert _code(r) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert await _state(pool, user_id) == (0, 1, 0)


async def test_a_refunded_calls_key_replays_its_failure(
    env: Env, pool: asyncpg.Pool, stubs: Stubs
) -> None:
    user_id, key, _ = await partner(env, pool, PRICE)
    k = {"Idempotency-Key": str(uuid.uuid4())}
    for stub in stubs:
        stub.outage_status = 503
    try:
        assert _code(await play(env, key, **k)) == (502, "UPSTREAM_FAILED")
    finally:
        for stub in stubs:
            stub.clear_failures()
    seen = _provider_calls(stubs)
    # The providers are back, but the key stays spent on its refunded failure.
    for _ in range(3):
        r = await play(env, key, **k)
        assert _code(r) == (502, "UPSTREAM_FAILED")
        assert r.json()["error"]["message"] == "上游服务调用失败, 费用已退回"
    assert _provider_calls(stubs) == seen
    assert await _state(pool, user_id) == (PRICE, 0, 1)
    # A new key is a new call, charged once.
    _data(await play(env, key, **{"Idempotency-Key": str(uuid.uuid4())}))
    assert await _state(pool, user_id) == (0, 1, 1)


async def test_concurrent_requests_with_one_key_do_the_work_once(
    env: Env, pool: asyncpg.Pool, stubs: Stubs
) -> None:
    user_id, key, _ = await partner(env, pool, 10 * PRICE)
    await env.service.tokens.validate(key)  # cached: the burst needs no key lookups
    k = {"Idempotency-Key": str(uuid.uuid4())}
    seen = _provider_calls(stubs)
    results = await asyncio.gather(*(play(env, key, **k) for _ in range(30)))
    assert {r.status_code for r in results} <= {200, 409}
    assert len({r.json()["data"]["url"] for r in results if r.status_code == 200}) == 1
    assert _provider_calls(stubs) == seen + 1
    assert await _state(pool, user_id) == (9 * PRICE, 1, 0)
    await flush(env)
    async with pool.acquire() as conn:
        costs = await conn.fetch(
            "SELECT cost FROM router_logs WHERE user_id = $1 AND cost > 0", user_id
        )
    assert [r["cost"] for r in costs] == [PRICE]  # one call charged, replays logged free


# -- 2. a lost reply after COMMIT -------------------------------------------------------


@asynccontextmanager
async def _through_proxy(migrated_url: str) -> AsyncIterator[FaultProxy]:
    """The service's statements go through a FaultProxy for the block (luser_db's pool
    is pointed at the proxy, then back at the database)."""
    proxy = FaultProxy(*server_address(migrated_url))
    await proxy.start()
    luser_db.init(
        via_local_port(migrated_url, proxy.port),
        min_size=1,
        max_size=8,
        ssl=False,
        statement_cache_size=0,
    )
    try:
        yield proxy
    finally:
        luser_db.init(migrated_url)  # the proxied pool is closed in the background
        await proxy.close()


async def test_a_reply_lost_after_commit_is_charged_logged_and_refunded_at_cost(
    env: Env, pool: asyncpg.Pool, stubs: Stubs, migrated_url: str
) -> None:
    user_id, key, _ = await partner(env, pool, 6 * PRICE)
    try:
        async with _through_proxy(migrated_url) as proxy:
            for _ in range(5):
                proxy.lose_reply(b"open_api_charge(")
                _data(await play(env, key))
            assert proxy.cuts == 5  # every charge committed, its reply lost, retried
            # Lost again, and then every channel fails: the retry's own charge is refunded.
            for stub in stubs:
                stub.outage_status = 503
            proxy.lose_reply(b"open_api_charge(")
            assert _code(await play(env, key)) == (502, "UPSTREAM_FAILED")
            assert proxy.cuts == 6
    finally:
        for stub in stubs:
            stub.clear_failures()
    await flush(env)
    assert await _state(pool, user_id) == (PRICE, 5, 1)
    async with pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT status_code, cost FROM router_logs WHERE user_id = $1 ORDER BY id", user_id
        )
    assert [tuple(r) for r in logged] == [(200, PRICE)] * 5 + [(502, 0)]


# -- 3. disabled owners and keys, whatever the cache says -------------------------------


async def _silently(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """Run ``sql`` without firing triggers: no NOTIFY reaches any cache."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_the_charge_refuses_what_a_stale_cache_still_trusts(
    env: Env, pool: asyncpg.Pool
) -> None:
    user_id, key, token_id = await partner(env, pool, 10 * PRICE)
    _data(await play(env, key))  # the key is cached
    await _silently(pool, "UPDATE users SET status = 'disabled' WHERE id = $1", user_id)
    assert isinstance(await env.service.tokens.validate(key), Valid)  # the cache is stale
    assert _code(await play(env, key)) == (403, "OWNER_DISABLED")
    await _silently(pool, "UPDATE users SET status = 'active' WHERE id = $1", user_id)
    await _silently(pool, "UPDATE api_tokens SET status = 'disabled' WHERE id = $1", token_id)
    assert isinstance(await env.service.tokens.validate(key), Valid)
    assert _code(await play(env, key)) == (401, "TOKEN_DISABLED")
    await _silently(
        pool,
        "UPDATE api_tokens SET status = 'enabled', expired_time = now() WHERE id = $1",
        token_id,
    )
    assert isinstance(await env.service.tokens.validate(key), Valid)  # cached: no expiry
    assert _code(await play(env, key)) == (401, "TOKEN_EXPIRED")
    assert await _state(pool, user_id) == (9 * PRICE, 1, 0)


async def test_after_the_listener_reconnects_the_token_cache_is_not_trusted(
    env: Env, pool: asyncpg.Pool
) -> None:
    user_id, key, _ = await partner(env, pool, 10 * PRICE)
    _data(await play(env, key))
    router = env.service.router
    reconnects = router.reconnects
    listener_pid = router.listener_pid
    assert listener_pid is not None
    # The owner is disabled while nobody listens: its notification is lost for good.
    await _silently(pool, "UPDATE users SET status = 'disabled' WHERE id = $1", user_id)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", listener_pid)
    deadline = time.monotonic() + 10
    while router.reconnects == reconnects:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        await asyncio.sleep(0.01)
    outcome = await env.service.tokens.validate(key)
    assert isinstance(outcome, Invalid) and outcome.reason == "owner_disabled"
    assert _code(await play(env, key)) == (403, "OWNER_DISABLED")


# -- 5. refused calls never reach the provider ------------------------------------------


async def test_a_burst_on_a_small_wallet_calls_the_provider_only_for_charged_calls(
    env: Env, pool: asyncpg.Pool, stubs: Stubs
) -> None:
    assert env.service.overlap_reads is False  # the default
    user_id, key, _ = await partner(env, pool, 5 * PRICE)
    _data(await play(env, key))  # a charge that leaves room for more
    seen = _provider_calls(stubs)
    results = await asyncio.gather(*(play(env, key) for _ in range(40)))
    charged = sum(r.status_code == 200 for r in results)
    assert charged == 4
    assert {_code(r) for r in results if r.status_code != 200} == {(402, "INSUFFICIENT_BALANCE")}
    assert _provider_calls(stubs) == seen + charged
    assert await _state(pool, user_id) == (0, 5, 0)


# -- 4. a keyed call whose process died mid-call ----------------------------------------


async def test_a_keyed_call_left_unanswered_by_a_dead_process_is_refunded_by_recovery(
    env: Env, pool: asyncpg.Pool, stubs: Stubs
) -> None:
    user_id, key, token_id = await partner(env, pool, 3 * PRICE)
    first = {"Idempotency-Key": str(uuid.uuid4())}
    _data(await play(env, key, **first))
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT fingerprint, path FROM quota_deductions WHERE request_id = $1",
            f"{user_id}:{first['Idempotency-Key']}",
        )
    assert row is not None
    # A process charged this same request under another key, then died before answering.
    dead = {"Idempotency-Key": str(uuid.uuid4())}
    await deduct_quota(
        user_id,
        token_id,
        PRICE,
        f"{user_id}:{dead['Idempotency-Key']}",
        call=CallRecord(
            fingerprint=row["fingerprint"], keyed=True, ability="video.play_url", path=row["path"]
        ),
    )
    seen = _provider_calls(stubs)
    assert _code(await play(env, key, **dead)) == (409, "IDEMPOTENCY_KEY_IN_PROGRESS")
    assert await _state(pool, user_id) == (PRICE, 2, 0)
    await flush(env)
    report = await recover(older_than=timedelta(0))  # nobody runs that call any more
    assert report.interrupted >= 1
    assert await _state(pool, user_id) == (2 * PRICE, 1, 1)
    for _ in range(2):  # the key now replays the interruption, never a free call
        assert _code(await play(env, key, **dead)) == (502, "CALL_INTERRUPTED")
    assert _provider_calls(stubs) == seen
    await flush(env)
    async with pool.acquire() as conn:
        rebuilt = await conn.fetchrow(
            "SELECT status_code, error_code, cost FROM router_logs WHERE deduction_id = $1",
            f"{user_id}:{dead['Idempotency-Key']}",
        )
    assert rebuilt is not None
    assert tuple(rebuilt) == (502, "CALL_INTERRUPTED", 0)
