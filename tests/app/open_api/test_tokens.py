"""Requirements 7, 8, 9, 10 (token part): hashed storage, revocation, every check, cache."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.open_api import _db, manage
from app.open_api.access import IpAllowList
from app.open_api.errors import (
    AbilityNotAllowed,
    IpNotAllowed,
    OpenTokenDisabled,
    OpenTokenExpired,
    OpenTokenInvalid,
    OwnerDisabled,
    QuotaExceeded,
)
from app.open_api.quota import deduct_quota
from app.open_api.tokens import Expired, Invalid, TokenStore, Valid, hash_key

from .conftest import PEPPER, MakeToken, MakeUser


async def test_database_holds_no_usable_key(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    user_id = await make_user()
    token_id, key = await make_token(user_id, name="dump-check")
    secret = key.removeprefix("sk-")
    tables = await conn.fetch(
        "SELECT quote_ident(table_name) AS t FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    for row in tables:
        dump = await conn.fetchval(
            f"SELECT coalesce(string_agg(x::text, ''), '') FROM {row['t']} x"
        )
        assert secret not in dump
        assert secret[:16] not in dump, row["t"]
    stored = await conn.fetchval("SELECT key_hash FROM api_tokens WHERE id = $1", token_id)
    assert stored == hash_key(key, PEPPER)
    # Peppered: the plain SHA-256 of the key (what a dictionary attack would try) is not it.
    assert stored != hashlib.sha256(key.encode()).digest()


async def test_outcomes(make_user: MakeUser, make_token: MakeToken, store: TokenStore) -> None:
    user_id = await make_user()
    _, key = await make_token(user_id)
    assert isinstance(await store.validate(key), Valid)
    assert await store.validate(None) == Invalid("missing")
    assert await store.validate("Bearer nope") == Invalid("malformed")
    assert await store.validate("sk-" + "A" * 43) == Invalid("unknown")
    info = (await store.validate(key)).info  # type: ignore[union-attr]
    assert info.user_id == user_id and info.group == "default"
    assert info.quota_limit == -1 and info.used_quota == 0


async def test_disable_is_immediate(
    make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    user_id = await make_user()
    token_id, key = await make_token(user_id)
    await store.authorize(key, "video.play_url", "10.0.0.1")  # now cached
    await manage.update_token(token_id, manage.TokenSpec(status="disabled"), user_id)
    store.invalidate_token(token_id)
    outcome = await store.validate(key)
    assert isinstance(outcome, Invalid) and outcome.reason == "disabled"
    with pytest.raises(OpenTokenDisabled):
        await store.authorize(key, "video.play_url", "10.0.0.1")
    await manage.delete_token(token_id, user_id)
    store.invalidate_token(token_id)
    with pytest.raises(OpenTokenInvalid):
        await store.authorize(key, "video.play_url", "10.0.0.1")


async def test_expiry_is_checked_against_the_clock_on_every_call(
    make_user: MakeUser, make_token: MakeToken
) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    clock = [now]
    store = TokenStore(PEPPER, ttl_seconds=3600, clock=lambda: clock[0])
    user_id = await make_user()
    _, key = await make_token(user_id, expired_time=now + timedelta(seconds=30))
    assert isinstance(await store.validate(key), Valid)
    clock[0] = now + timedelta(seconds=30)  # no invalidation: the cached entry is reused
    assert isinstance(await store.validate(key), Expired)
    with pytest.raises(OpenTokenExpired):
        await store.authorize(key, "video.play_url", None)


async def test_lowered_quota_refuses_the_next_call(
    make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    user_id = await make_user(balance=10_000)
    token_id, key = await make_token(user_id, quota_limit=1_000)
    info = await store.authorize(key, "video.play_url", None)
    await deduct_quota(user_id, info.token_id, 400, "lower-1")
    await manage.update_token(token_id, manage.TokenSpec(quota_limit=500), user_id)
    store.invalidate_token(token_id)
    info = await store.authorize(key, "video.play_url", None)
    assert info.quota_limit == 500
    with pytest.raises(QuotaExceeded):
        await deduct_quota(user_id, info.token_id, 400, "lower-2")


async def test_owner_disabled(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    user_id = await make_user()
    _, key = await make_token(user_id)
    await store.authorize(key, "catalog.search", None)
    await conn.execute("UPDATE users SET status = 'disabled' WHERE id = $1", user_id)
    store.invalidate_user(user_id)
    with pytest.raises(OwnerDisabled):
        await store.authorize(key, "catalog.search", None)


async def test_ability_allow_list(
    make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    user_id = await make_user()
    _, key = await make_token(user_id, allowed_abilities=["catalog.search"])
    await store.authorize(key, "catalog.search", None)
    with pytest.raises(AbilityNotAllowed):
        await store.authorize(key, "video.play_url", None)


@pytest.mark.parametrize(
    ("allowed", "ip", "ok"),
    [
        (["10.1.0.0/16"], "10.1.200.3", True),
        (["10.1.0.0/16"], "10.2.0.1", False),
        (["192.0.2.7"], "192.0.2.7", True),
        (["192.0.2.7"], "192.0.2.8", False),
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::5", False),
        (["2001:db8::/32"], "10.1.0.1", False),
        (["10.1.0.0/16"], "::ffff:10.1.0.9", True),  # IPv4-mapped IPv6 from a dual-stack socket
        (["fe80::1"], "fe80::1%eth0", True),
        (["10.1.0.0/16", "2001:db8::/32"], "2001:db8::1", True),
        ([], "10.1.0.1", False),  # an empty list allows nobody
        (["10.1.0.0/16"], None, False),
        (["10.1.0.0/16"], "not-an-ip", False),
    ],
)
async def test_ip_allow_list(
    make_user: MakeUser,
    make_token: MakeToken,
    store: TokenStore,
    allowed: list[str],
    ip: str | None,
    ok: bool,
) -> None:
    user_id = await make_user()
    _, key = await make_token(user_id, allowed_ips=allowed)
    if ok:
        await store.authorize(key, "catalog.search", ip)
    else:
        with pytest.raises(IpNotAllowed):
            await store.authorize(key, "catalog.search", ip)


def test_ip_allow_list_none_allows_all() -> None:
    assert IpAllowList.parse(None).allows("203.0.113.9")
    assert IpAllowList.parse(None).allows(None)


async def test_bad_ip_entry_is_a_validation_error(
    make_user: MakeUser, make_token: MakeToken
) -> None:
    from luser_common import ValidationError

    user_id = await make_user()
    with pytest.raises(ValidationError) as info:
        await make_token(user_id, allowed_ips=["10.0.0.0/33"])
    assert info.value.field == "allowed_ips"


async def test_cached_validation_issues_no_sql(
    make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    user_id = await make_user()
    _, key = await make_token(user_id)
    async with _db.count_statements() as first:
        await store.authorize(key, "catalog.search", "10.0.0.1")
    assert len(first.reads) == 1  # the counter works: a miss reads once
    async with _db.count_statements() as steady:
        for _ in range(100):
            await store.authorize(key, "catalog.search", "10.0.0.1")
    assert steady.statements == []


async def test_accessed_time_writes_are_coalesced(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken
) -> None:
    from app.open_api.tokens import AccessTracker

    user_id = await make_user()
    token_id, _ = await make_token(user_id)
    tracker = AccessTracker()
    for _ in range(500):
        tracker.touch(token_id)
    async with _db.count_statements() as counter:
        assert await tracker.flush() == 1
    assert len(counter.writes) == 1
    assert await conn.fetchval("SELECT accessed_time FROM api_tokens WHERE id = $1", token_id)


async def test_change_made_elsewhere_reaches_the_cache_by_notify(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    import asyncio

    from app.open_api.router import ConfigRefresher

    user_id = await make_user()
    token_id, key = await make_token(user_id)
    refresher = ConfigRefresher(poll_interval=3600, on_token_change=store.on_notify)
    await refresher.start()
    try:
        await store.authorize(key, "catalog.search", None)  # cached on "this node"
        # "Another node" (plain SQL here) disables the key; nobody calls invalidate_*.
        await conn.execute("UPDATE api_tokens SET status = 'disabled' WHERE id = $1", token_id)
        for _ in range(200):
            if len(store) == 0:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(OpenTokenDisabled):
            await store.authorize(key, "catalog.search", None)
    finally:
        await refresher.stop()


async def test_a_lost_listener_drops_cached_tokens_on_reconnect(
    conn: asyncpg.Connection, make_user: MakeUser, make_token: MakeToken, store: TokenStore
) -> None:
    # Notifications sent while the LISTEN connection was away are lost: the reconnect
    # must forget every cached token instead of serving a revoked one.
    import asyncio

    from app.open_api.router import ConfigRefresher

    user_id = await make_user()
    _, key = await make_token(user_id)
    refresher = ConfigRefresher(poll_interval=3600, on_token_change=store.on_notify)
    await refresher.start()
    try:
        await store.authorize(key, "catalog.search", None)
        assert len(store) == 1
        assert refresher._listener is not None
        await conn.execute("SELECT pg_terminate_backend($1)", refresher._listener.pid)
        for _ in range(500):
            if len(store) == 0:
                break
            await asyncio.sleep(0.02)
        assert len(store) == 0
    finally:
        await refresher.stop()
