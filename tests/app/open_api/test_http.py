"""The open API over HTTP against real PostgreSQL and VOD stubs on 127.0.0.1.

Requirements covered here end to end: 2 (conservation), 8 (revocation through the
management API), 9 (distinct error codes), 10 (no SQL reads on the hot path),
11 (overflow counted in /metrics), 15 (admin disables a channel), 16 (failover logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from app import create_app
from app.lifespan import init_database
from app.open_api.logs import LogWriter
from app.open_api.service import CallContext
from app.open_api.tokens import TokenInfo
from app.sandbox.vod import TencentVodStub
from luser_db.testing import count_statements

from .service_env import PRICE, Env
from .service_env import flush as _flush
from .service_env import partner as _partner
from .service_env import play as _play
from .service_env import sk as _sk


async def test_a_call_is_charged_routed_and_logged(
    env: Env, pool: asyncpg.Pool, stubs: tuple[TencentVodStub, TencentVodStub]
) -> None:
    user_id, key, token_id = await _partner(env, pool, 5 * PRICE)
    r = await _play(env, key)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["url"].startswith("https://")
    await _flush(env)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM router_logs WHERE user_id = $1", user_id)
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    assert row["channel_id"] == env.channels["A"]  # the top tier
    assert (row["status_code"], row["cost"], row["token_id"]) == (200, PRICE, token_id)
    assert row["request_id"] == r.headers["x-request-id"]
    assert balance == 4 * PRICE


async def test_error_codes(env: Env, pool: asyncpg.Pool) -> None:
    async def code(r: httpx.Response) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]

    r = await env.client.get(f"/open/v1/videos/{env.video_id}/play_url")
    assert await code(r) == (401, "INVALID_TOKEN")
    assert await code(await _play(env, "sk-" + "x" * 43)) == (401, "INVALID_TOKEN")
    assert await code(await _play(env, "not-a-key")) == (401, "INVALID_TOKEN")

    _, key, _ = await _partner(env, pool, 0)
    assert await code(await _play(env, key)) == (402, "INSUFFICIENT_BALANCE")

    _, key, _ = await _partner(env, pool, 10 * PRICE, quota_limit=PRICE)
    assert (await _play(env, key)).status_code == 200
    assert await code(await _play(env, key)) == (429, "QUOTA_EXCEEDED")

    _, key, _ = await _partner(env, pool, PRICE, allowed_abilities=["catalog.search"])
    assert await code(await _play(env, key)) == (403, "ABILITY_NOT_ALLOWED")

    _, key, _ = await _partner(env, pool, PRICE, allowed_ips=["2001:db8::/32", "192.168.0.0/16"])
    assert await code(await _play(env, key)) == (403, "IP_NOT_ALLOWED")
    _, key, _ = await _partner(env, pool, PRICE, allowed_ips=["10.1.0.0/16"])
    assert (await _play(env, key)).status_code == 200

    # A token cannot be created expired (422); one whose expiry has passed is refused.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    user_id, key, token_id = await _partner(env, pool, PRICE)
    r = await env.client.patch(
        f"/api/tokens/{token_id}", headers=env.jwt(user_id), json={"expired_time": past}
    )
    assert r.status_code == 200, r.text
    assert await code(await _play(env, key)) == (401, "TOKEN_EXPIRED")

    user_id, key, _token_id = await _partner(env, pool, PRICE)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE users SET status = 'disabled' WHERE id = $1", user_id)
    env.service.tokens.invalidate_user(user_id)
    assert await code(await _play(env, key)) == (403, "OWNER_DISABLED")


async def test_revocation_through_the_management_api_is_immediate(
    env: Env, pool: asyncpg.Pool
) -> None:
    user_id, key, token_id = await _partner(env, pool, 10 * PRICE, quota_limit=10 * PRICE)
    assert (await _play(env, key)).status_code == 200  # cached now
    r = await env.client.patch(
        f"/api/tokens/{token_id}", headers=env.jwt(user_id), json={"quota_limit": PRICE}
    )
    assert r.status_code == 200 and r.json()["data"]["quota_limit"] == PRICE
    assert (await _play(env, key)).json()["error"]["code"] == "QUOTA_EXCEEDED"
    r = await env.client.patch(
        f"/api/tokens/{token_id}",
        headers=env.jwt(user_id),
        json={"quota_limit": -1, "status": "disabled"},
    )
    assert r.status_code == 200
    assert (await _play(env, key)).json()["error"]["code"] == "TOKEN_DISABLED"
    r = await env.client.patch(
        f"/api/tokens/{token_id}",
        headers=env.jwt(user_id),
        json={"status": "enabled", "expired_time": datetime.now(UTC).isoformat()},
    )
    assert (await _play(env, key)).json()["error"]["code"] == "TOKEN_EXPIRED"
    # Another user cannot touch the token; the owner can delete it.
    other, _, _ = await _partner(env, pool, 0)
    r = await env.client.delete(f"/api/tokens/{token_id}", headers=env.jwt(other))
    assert r.status_code == 404
    r = await env.client.delete(f"/api/tokens/{token_id}", headers=env.jwt(user_id))
    assert r.status_code == 204
    assert (await _play(env, key)).json()["error"]["code"] == "INVALID_TOKEN"


async def test_hot_path_issues_no_sql_reads(env: Env, pool: asyncpg.Pool) -> None:
    _user_id, key, _token_id = await _partner(env, pool, 100 * PRICE)
    body = {"title": "t", "file_name": "a.mp4"}
    assert (
        await env.client.post("/open/v1/uploads", headers=_sk(key), json=body)
    ).status_code == 200
    assert (await _play(env, key)).status_code == 200  # warm: token cached, snapshot loaded
    with count_statements() as counter:
        for _ in range(5):
            r = await env.client.post("/open/v1/uploads", headers=_sk(key), json=body)
            assert r.status_code == 200, r.text
            assert (await _play(env, key)).status_code == 200
    # The only reads are the catalog's lookup of the video each play serves (the
    # resource itself); the open API (token, owner, route, price) reads nothing.
    lookups = [s for s in counter.reads if s.startswith("select * from videos where id = $1")]
    assert len(lookups) == 5 and lookups == counter.reads, counter.reads
    # Per call exactly one write: the deduction. The log writer's COPY batches run in
    # the background on their own schedule.
    calls = [s for s in counter.writes if not s.startswith("COPY")]
    assert len(calls) == 10, calls
    assert all("quota_deductions" in s for s in calls)


async def test_failover_is_logged(
    env: Env, pool: asyncpg.Pool, stubs: tuple[TencentVodStub, TencentVodStub]
) -> None:
    a, b = stubs
    user_id, key, _ = await _partner(env, pool, 10 * PRICE)
    a.outage_status = 503
    try:
        r = await _play(env, key)
        assert r.status_code == 200, r.text
        b.outage_status = 503
        r = await _play(env, key)
        assert (r.status_code, r.json()["error"]["code"]) == (502, "UPSTREAM_FAILED")
    finally:
        a.clear_failures()
        b.clear_failures()
    await _flush(env)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT channel_id, failed_channel_ids, status_code, cost FROM router_logs "
            "WHERE user_id = $1 ORDER BY id",
            user_id,
        )
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    A, B = env.channels["A"], env.channels["B"]
    assert [tuple(r) for r in rows] == [(B, [A], 200, PRICE), (None, [A, B], 502, 0)]
    assert balance == 9 * PRICE  # the failed call was refunded
    metrics = (await env.client.get("/metrics")).text
    assert re.search(rf'open_api_upstream_failures_total{{channel="{A}"}} [1-9]', metrics)


async def test_disabled_channel_is_never_selected(env: Env, pool: asyncpg.Pool) -> None:
    user_id, key, _ = await _partner(env, pool, 20 * PRICE)
    auth = {"Authorization": env.admin_jwt}
    r = await env.client.patch(
        f"/api/admin/open/channels/{env.channels['A']}", headers=auth, json={"status": "disabled"}
    )
    assert r.status_code == 200, r.text
    try:
        for _ in range(10):
            assert (await _play(env, key)).status_code == 200
    finally:
        await env.client.patch(
            f"/api/admin/open/channels/{env.channels['A']}",
            headers=auth,
            json={"status": "enabled"},
        )
    await _flush(env)
    async with pool.acquire() as conn:
        used = await conn.fetch(
            "SELECT DISTINCT channel_id FROM router_logs WHERE user_id = $1", user_id
        )
    assert [r["channel_id"] for r in used] == [env.channels["B"]]


async def test_conservation_to_the_nano_unit(
    env: Env, pool: asyncpg.Pool, stubs: tuple[TencentVodStub, TencentVodStub]
) -> None:
    start_balance = 37 * PRICE + 123
    limit = 20 * PRICE + 7  # below what the burst asks for: the limit is reached
    user_id, key, token_id = await _partner(env, pool, start_balance, quota_limit=limit)
    # A vip-like group with a ratio that does not divide evenly: rounding is exercised.
    group = f"g{secrets.token_hex(3)}"
    auth = {"Authorization": env.admin_jwt}
    assert (
        await env.client.post(
            "/api/admin/open/groups", headers=auth, json={"name": group, "ratio": "0.333333"}
        )
    ).status_code == 200
    assert (
        await env.client.post(
            "/api/admin/open/group_members", headers=auth, json={"user_id": user_id, "group": group}
        )
    ).status_code == 200
    replay = str(uuid.uuid4())
    calls = [_play(env, key) for _ in range(80)]
    calls += [_play(env, key, **{"Idempotency-Key": replay}) for _ in range(8)]
    calls += [env.client.get("/open/v1/videos", headers=_sk(key)) for _ in range(10)]
    results = await asyncio.gather(*calls)
    statuses = {r.status_code for r in results}
    assert statuses == {200, 429} or statuses == {200, 409, 429}, statuses
    # 409 only for a replay that came while the first call with its key still ran.
    assert all(
        r.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
        for r in results
        if r.status_code == 409
    )
    assert all(r.status_code != 409 for r in results[:80] + results[88:])
    # Every served replay answers the first call's very outcome.
    assert (
        len({r.text.split('"timestamp"')[0] for r in results[80:88] if r.status_code == 200}) <= 1
    )
    await _flush(env)
    async with pool.acquire() as conn:
        logged = await conn.fetchval(
            "SELECT coalesce(sum(cost), 0) FROM router_logs WHERE user_id = $1", user_id
        )
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
        used = await conn.fetchval("SELECT used_quota FROM api_tokens WHERE id = $1", token_id)
        deducted = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM quota_deductions "
            "WHERE user_id = $1 AND refunded_at IS NULL",
            user_id,
        )
        calls_logged = await conn.fetchval(
            "SELECT count(*) FROM router_logs WHERE user_id = $1", user_id
        )
        keyed_charges = await conn.fetchval(
            "SELECT count(*) FROM quota_deductions WHERE request_id = $1 AND refunded_at IS NULL",
            f"{user_id}:{replay}",
        )
    assert calls_logged == len(calls)
    assert logged == start_balance - balance == used == deducted > 0
    assert limit - 3_333_330 < used <= limit and balance >= 0
    play_cost = 3_333_330  # 10_000_000 * 0.333333, exact
    search_cost = 333_333  # 1_000_000 * 0.333333 = 333333.0
    ok_play = sum(1 for r in results[:80] if r.status_code == 200)
    ok_replay = sum(1 for r in results[80:88] if r.status_code == 200)
    ok_search = sum(1 for r in results[88:] if r.status_code == 200)
    assert keyed_charges == min(ok_replay, 1)  # one charge per key, however many replays
    assert logged == ok_play * play_cost + keyed_charges * play_cost + ok_search * search_cost


async def test_log_overflow_never_fails_the_call(env: Env, pool: asyncpg.Pool) -> None:
    _, key, _ = await _partner(env, pool, 10 * PRICE)
    service = env.service
    real = service.logs
    tiny = LogWriter(queue_size=1, metrics=service.metrics)  # not started: it never drains
    service.logs = tiny
    try:
        before = service.metrics.logs_dropped.labels("queue_full")._value.get()
        for _ in range(4):
            assert (await _play(env, key)).status_code == 200
        metrics = (await env.client.get("/metrics")).text
    finally:
        service.logs = real
        await tiny.flush()
    assert tiny.dropped == 3
    match = re.search(r'open_api_logs_dropped_total\{reason="queue_full"\} ([0-9.]+)', metrics)
    assert match and float(match.group(1)) == before + 3


async def test_usage_and_logs_endpoints(env: Env, pool: asyncpg.Pool) -> None:
    user_id, key, _token_id = await _partner(env, pool, 10 * PRICE)
    for _ in range(3):
        assert (await _play(env, key)).status_code == 200
    r = await env.client.get("/open/v1/usage", headers=_sk(key))
    assert r.status_code == 200, r.text
    await _flush(env)
    r = await env.client.get("/api/tokens/usage", headers=env.jwt(user_id))
    days = r.json()["data"]["days"]
    assert sum(d["cost"] for d in days) == 3 * PRICE
    r = await env.client.get(
        "/api/admin/open/usage",
        headers={"Authorization": env.admin_jwt},
        params={"user_id": user_id},
    )
    assert r.status_code == 200, r.text
    assert sum(d["cost"] for d in r.json()["data"]["days"]) == 3 * PRICE
    r = await env.client.get("/api/tokens/logs", headers=env.jwt(user_id), params={"limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()["data"]
    assert len(page["items"]) == 2 and page["next_cursor"]
    r = await env.client.get(
        "/api/tokens/logs",
        headers=env.jwt(user_id),
        params={"limit": 2, "cursor": page["next_cursor"]},
    )
    assert len(r.json()["data"]["items"]) == 2  # 3 plays + 1 usage call
    r = await env.client.get(
        "/api/admin/open/logs",
        headers={"Authorization": env.admin_jwt},
        params={"user_id": user_id, "limit": 10},
    )
    assert len(r.json()["data"]["items"]) == 4
    r = await env.client.get("/api/admin/open/logs", headers=env.jwt(user_id))
    assert r.status_code == 403
    r = await env.client.get("/api/tokens/wallet", headers=env.jwt(user_id))
    assert r.json()["data"]["balance"] == 7 * PRICE


async def test_top_up_is_ledgered_and_idempotent(env: Env, pool: asyncpg.Pool) -> None:
    user_id, _, _ = await _partner(env, pool, 0)
    auth = {"Authorization": env.admin_jwt}
    body = {"user_id": user_id, "amount": 5 * PRICE, "reference": f"pay-{uuid.uuid4()}"}
    first, second = await asyncio.gather(
        env.client.post("/api/admin/open/topups", headers=auth, json=body),
        env.client.post("/api/admin/open/topups", headers=auth, json=body),
    )
    assert {first.status_code, second.status_code} <= {201, 409}
    async with pool.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
        ledger = await conn.fetch(
            "SELECT amount, balance_after FROM wallet_ledger WHERE user_id = $1", user_id
        )
    assert balance == 5 * PRICE
    assert [tuple(r) for r in ledger] == [(5 * PRICE, 5 * PRICE)]
    r = await env.client.get("/api/admin/open/topups", headers=auth, params={"user_id": user_id})
    assert [(e["amount"], e["kind"]) for e in r.json()["data"]] == [(5 * PRICE, "topup")]
    r = await env.client.post("/api/admin/open/topups", headers=auth, json={**body, "amount": 1.5})
    assert r.status_code == 422  # money is never a float


async def test_listings_never_show_secrets(env: Env, pool: asyncpg.Pool) -> None:
    user_id, key, token_id = await _partner(env, pool, 0, name="listing")
    r = await env.client.get("/api/tokens", headers=env.jwt(user_id))
    tokens = r.json()["data"]
    assert [t["id"] for t in tokens] == [token_id]
    assert "key" not in tokens[0] and "key_hash" not in tokens[0]
    assert tokens[0]["key_hint"].startswith(key[:7]) and key not in r.text
    r = await env.client.get(f"/api/tokens/{token_id}", headers=env.jwt(user_id))
    assert r.json()["data"]["name"] == "listing"
    r = await env.client.get("/api/admin/open/channels", headers={"Authorization": env.admin_jwt})
    channels = r.json()["data"]
    assert channels and all(c["has_credentials"] and "credentials" not in c for c in channels)
    assert "stubKeyA" not in r.text
    r = await env.client.get("/api/admin/open/abilities", headers={"Authorization": env.admin_jwt})
    assert {p["ability"] for p in r.json()["data"]["prices"]} >= {"video.play_url"}
    r = await env.client.get("/api/admin/open/groups", headers={"Authorization": env.admin_jwt})
    assert "default" in {g["name"] for g in r.json()["data"]}


async def test_the_app_lifespan_runs_the_open_api(env: Env) -> None:
    app = create_app(env.config)
    paths = [
        (getattr(r, "path", ""), sorted(getattr(r, "methods", None) or [])) for r in app.routes
    ]
    assert len(paths) == len({(p, tuple(m)) for p, m in paths})
    try:
        async with app.router.lifespan_context(app):
            service = app.state.services.open_api
            assert service.logs.running and service.router.config.version > 0
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/metrics")).status_code == 200
        assert not service.logs.running
    finally:
        # The app's shutdown closed luser_db's pools: reopen them for later tests.
        init_database(env.config)


async def test_bad_listing_input_is_a_4xx(env: Env, pool: asyncpg.Pool) -> None:
    user_id, _, _ = await _partner(env, pool, 0)
    for params in (
        {"cursor": "not-a-cursor"},
        {"limit": 0},
        {"since": "yesterday"},
        {"ability": "DROP TABLE"},
        {"since": "2026-11-01T00:00:00"},  # no time zone
    ):
        r = await env.client.get("/api/tokens/logs", headers=env.jwt(user_id), params=params)
        assert 400 <= r.status_code < 500, (params, r.text)
    r = await env.client.get(
        "/api/tokens/usage", headers=env.jwt(user_id), params={"since": "2030-01-01T00:00:00Z"}
    )
    assert r.status_code == 422


# -- read-only work overlaps the charge -----------------------------------------------


@contextlib.asynccontextmanager
async def _wallet_locked(pool: asyncpg.Pool, user_id: int) -> AsyncIterator[None]:
    """Hold the wallet row: every deduction of ``user_id`` waits until the block ends."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        yield


def _described(stub: TencentVodStub) -> int:
    return len(stub.calls("DescribeMediaInfos"))


async def _deduction_waits_for_the_wallet(pool: asyncpg.Pool, deadline_s: float = 10.0) -> None:
    """Poll (with a deadline) until a deduction is blocked on the held wallet row: from
    then on nothing can be charged, so what has not happened yet waits for the charge."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    async with pool.acquire() as conn:
        while loop.time() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%quota_deductions%'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)  # poll interval, not synchronisation
    pytest.fail("no deduction ever waited for the wallet row")


def _overlapped(env: Env, outcome: str) -> float:
    return float(env.service.metrics.overlapped.labels(outcome)._value.get())


@pytest.fixture
def overlap_on(env: Env) -> Iterator[None]:
    """Turn the (off by default) overlap of read-only work and charge on for one test."""
    env.service.overlap_reads = True
    try:
        yield
    finally:
        env.service.overlap_reads = env.config.open_api.overlap_reads


@pytest.mark.usefixtures("overlap_on")
async def test_read_only_work_runs_while_the_charge_commits(
    env: Env, pool: asyncpg.Pool, stubs: tuple[TencentVodStub, TencentVodStub]
) -> None:
    a, _ = stubs
    user_id, key, _ = await _partner(env, pool, 10 * PRICE)
    assert (await _play(env, key)).status_code == 200  # the charge leaves headroom for more
    served = _overlapped(env, "served")
    seen = _described(a)
    async with _wallet_locked(pool, user_id):
        call = asyncio.create_task(_play(env, key))
        # The provider is asked while the deduction still waits for the wallet row ...
        for _ in range(500):
            if _described(a) > seen:
                break
            await asyncio.sleep(0.01)
        assert _described(a) == seen + 1
        await _deduction_waits_for_the_wallet(pool)
        assert not call.done()  # ... but nothing is served before the charge commits
    r = await call
    assert r.status_code == 200, r.text
    assert _overlapped(env, "served") == served + 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id) == 8 * PRICE


@pytest.mark.parametrize("case", ["first call of a key", "not read-only", "turned off"])
async def test_otherwise_the_work_starts_after_the_charge(
    env: Env, pool: asyncpg.Pool, case: str
) -> None:
    user_id, key, _ = await _partner(env, pool, 10 * PRICE)
    service = env.service
    read_only = case != "not read-only"
    if case != "first call of a key":
        assert (await _play(env, key)).status_code == 200  # headroom recorded
    started = asyncio.Event()

    async def work(_: TokenInfo) -> str:
        started.set()
        return "done"

    def context() -> CallContext:
        return CallContext(key, "catalog.search", "/t", "10.1.2.3", uuid.uuid4().hex)

    service.overlap_reads = case != "turned off"
    try:
        async with _wallet_locked(pool, user_id):
            call = asyncio.create_task(
                service.call(context(), None, local=work, read_only=read_only)
            )
            await _deduction_waits_for_the_wallet(pool)
            assert not started.is_set() and not call.done()
        assert await call == "done" and started.is_set()
    finally:
        service.overlap_reads = env.config.open_api.overlap_reads


@pytest.mark.usefixtures("overlap_on")
async def test_an_overlapped_call_refused_at_the_charge_is_not_served(
    env: Env, pool: asyncpg.Pool, stubs: tuple[TencentVodStub, TencentVodStub]
) -> None:
    a, _ = stubs
    user_id, key, _ = await _partner(env, pool, 10 * PRICE)
    assert (await _play(env, key)).status_code == 200
    async with pool.acquire() as conn:  # drained elsewhere: the headroom hint is stale
        await conn.execute("UPDATE users SET balance = 0 WHERE id = $1", user_id)
    discarded = _overlapped(env, "discarded")
    before = _described(a)
    r = await _play(env, key)
    assert (r.status_code, r.json()["error"]["code"]) == (402, "INSUFFICIENT_BALANCE")
    assert "url" not in r.text
    assert _overlapped(env, "discarded") == discarded + 1
    # The refusal drops the hint: the next call is charged first, the provider not asked.
    for _ in range(500):  # the discarded lookup reaches the stub (poll with a deadline)
        if _described(a) == before + 1:
            break
        await asyncio.sleep(0.01)
    seen = _described(a)
    assert seen == before + 1
    r = await _play(env, key)
    assert r.status_code == 402 and _described(a) == seen
    await _flush(env)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT status_code, channel_id, cost FROM router_logs WHERE user_id = $1 ORDER BY id",
            user_id,
        )
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    assert [tuple(r) for r in rows] == [
        (200, env.channels["A"], PRICE),
        (402, None, 0),
        (402, None, 0),
    ]
    assert balance == 0


async def test_the_hot_path_on_the_services_own_pool(env: Env, pool: asyncpg.Pool) -> None:
    # The open API borrows luser_db's pool, whose connections go back without a reset
    # round trip: a refused charge must leave nothing behind on them.
    user_id, key, _ = await _partner(env, pool, PRICE)
    assert (await _play(env, key)).status_code == 200
    assert (await _play(env, key)).json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert (await _play(env, key)).status_code == 402  # the refused one left no mess
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id) == 0
