"""Token management and administration routes over HTTP against real PostgreSQL:
bad input and constraint violations are 4xx errors in the envelope, never 500."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app import create_app
from app.accounts.security import AccessTokens
from app.lifespan import init_database
from app.open_api.feature import feature as open_api_feature
from app.settings import AppConfig

from ..response_shapes import shape_check
from .conftest import PEPPER, MakeUser

MAX_BIGINT = 2**63 - 1


class Admin:
    """An in-process client with an admin's and any user's credentials."""

    def __init__(self, client: httpx.AsyncClient, config: AppConfig, admin_id: int) -> None:
        self.client = client
        self.tokens = AccessTokens(config.jwt)
        self.auth = self.jwt(admin_id, "admin")

    def jwt(self, user_id: int, role: str = "user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.encode(user_id, role)}"}

    async def send(
        self, method: str, path: str, body: Any = None, *, user: int | None = None
    ) -> httpx.Response:
        headers = self.auth if user is None else self.jwt(user)
        return await self.client.request(method, path, json=body, headers=headers)

    async def channel(self, **fields: Any) -> dict[str, Any]:
        body = {"name": f"ch-{secrets.token_hex(4)}", "provider": "tencent", **fields}
        r = await self.send("POST", "/api/admin/open/channels", body)
        assert r.status_code == 201, r.text
        return r.json()["data"]  # type: ignore[no-any-return]

    async def token(self, user_id: int, **fields: Any) -> dict[str, Any]:
        r = await self.send("POST", "/api/tokens", fields, user=user_id)
        assert r.status_code == 201, r.text
        return r.json()["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def admin_api(
    pool: asyncpg.Pool, migrated_url: str, make_admin_id: int
) -> AsyncIterator[Admin]:
    config = AppConfig.model_validate(
        {
            "database": {"url": migrated_url, "max_connections": 5},
            "open_api": {"token_pepper": PEPPER.decode(), "config_poll_interval_seconds": 3600},
        }
    )
    app = create_app(config)
    # The app's startup without its shutdown, which would close luser_db's pools
    # that sibling modules of this session still use.
    app.state.config = config
    app.state.services = services = app.state.build_services(config)
    init_database(config)
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 40000))
    async with (
        open_api_feature.lifespan(services),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            event_hooks={"response": [shape_check(app)]},
        ) as client,
    ):
        yield Admin(client, config, make_admin_id)
    await app.state.services.aclose()


@pytest.fixture(scope="module")
async def make_admin_id(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        admin_id: int = await conn.fetchval(
            "INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'admin') RETURNING id",
            f"admin{secrets.token_hex(4)}@example.com",
        )
    return admin_id


def refused(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The envelope's error, after checking the status and the field it names."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    if field is not None:
        assert error.get("field") == field, r.text
    return error


def chinese(message: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in message)


async def _balance(pool: asyncpg.Pool, user_id: int) -> tuple[int, int]:
    async with pool.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
        entries = await conn.fetchval(
            "SELECT count(*) FROM wallet_ledger WHERE user_id = $1", user_id
        )
    return balance, entries


# -- bad input: time zones, integers out of range ------------------------------------


async def test_an_unknown_time_zone_is_a_422_on_every_usage_route(
    admin_api: Admin, make_user: MakeUser
) -> None:
    user_id = await make_user()
    key = (await admin_api.token(user_id))["key"]
    partner = {"Authorization": f"Bearer {key}"}
    routes = [
        ("/open/v1/usage", partner),
        ("/api/tokens/usage", admin_api.jwt(user_id)),
        ("/api/admin/open/usage", admin_api.auth),
    ]
    for path, headers in routes:
        for zone in ("Mars/Olympus_Mons", "UTC+99", "Europe/Nowhere"):
            r = await admin_api.client.get(path, headers=headers, params={"tz": zone})
            error = refused(r, 422, "tz")
            assert "时区" in error["message"], r.text
        r = await admin_api.client.get(path, headers=headers, params={"tz": "Asia/Shanghai"})
        assert r.status_code == 200, r.text


async def test_integers_beyond_their_column_are_422_naming_the_field(
    admin_api: Admin, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user_id = await make_user()
    token = await admin_api.token(user_id)
    channel = await admin_api.channel()
    group = f"g{secrets.token_hex(4)}"
    tokens, channels = "/api/admin/open/tokens", "/api/admin/open/channels"
    topups = "/api/admin/open/topups"
    cases: list[tuple[str, str, dict[str, Any], str, int | None]] = [
        ("POST", "/api/tokens", {"quota_limit": 10**20}, "quota_limit", user_id),
        ("POST", "/api/tokens", {"quota_limit": 1e20}, "quota_limit", user_id),
        ("PATCH", f"/api/tokens/{token['id']}", {"quota_limit": 10**20}, "quota_limit", user_id),
        ("PATCH", f"{tokens}/{token['id']}", {"quota_limit": 2**63}, "quota_limit", None),
        ("POST", topups, {"user_id": user_id, "amount": 2**63}, "amount", None),
        ("POST", topups, {"user_id": user_id, "amount": -(2**63)}, "amount", None),
        ("POST", topups, {"user_id": 2**63, "amount": 1}, "user_id", None),
        ("POST", "/api/admin/open/prices", {"ability": "x.y", "price": 2**63}, "price", None),
        (
            "POST",
            channels,
            {"name": "n", "provider": "aliyun", "priority": 2**40},
            "priority",
            None,
        ),
        ("PATCH", f"{channels}/{channel['id']}", {"priority": 2**31}, "priority", None),
        (
            "POST",
            "/api/admin/open/abilities",
            {"ability": "video.play_url", "channel_id": channel["id"], "priority": 2**31},
            "priority",
            None,
        ),
        ("POST", "/api/admin/open/groups", {"name": group, "ratio": "1e400"}, "ratio", None),
        ("POST", "/api/admin/open/groups", {"name": group, "ratio": 10**7}, "ratio", None),
        ("POST", "/api/admin/open/groups", {"name": group, "ratio": "NaN"}, "ratio", None),
    ]  # fmt: skip
    for method, path, body, field, user in cases:
        r = await admin_api.send(method, path, body, user=user)
        error = refused(r, 422, field)
        assert chinese(error["message"]), r.text
    assert await _balance(pool, user_id) == (0, 0)


async def test_a_forged_log_cursor_is_a_422(admin_api: Admin, make_user: MakeUser) -> None:
    user_id = await make_user()
    forged = (
        f"2026-01-01T00:00:00+00:00|{2**70}",  # a row id past bigint
        "2026-01-01T00:00:00|5",  # a time without a zone
        "2026-01-01T00:00:00+00:00|-5",
    )
    for raw in forged:
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        for path, user in (("/api/tokens/logs", user_id), ("/api/admin/open/logs", None)):
            r = await admin_api.send("GET", f"{path}?cursor={cursor}", user=user)
            assert "游标" in refused(r, 422, "cursor")["message"]


async def test_top_up_for_an_unknown_user_is_404(admin_api: Admin) -> None:
    r = await admin_api.send("POST", "/api/admin/open/topups", {"user_id": MAX_BIGINT, "amount": 1})
    refused(r, 404, "user_id")


async def test_a_top_up_that_would_overflow_the_balance_is_409(
    admin_api: Admin, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user_id = await make_user(balance=MAX_BIGINT - 5)
    r = await admin_api.send("POST", "/api/admin/open/topups", {"user_id": user_id, "amount": 6})
    error = refused(r, 409, "amount")
    assert error["code"] == "BALANCE_OVERFLOW" and "上限" in error["message"]
    body = {"user_id": user_id, "amount": -MAX_BIGINT, "kind": "adjust"}
    r = await admin_api.send("POST", "/api/admin/open/topups", body)
    assert refused(r, 402)["code"] == "INSUFFICIENT_BALANCE"
    assert await _balance(pool, user_id) == (MAX_BIGINT - 5, 0)
    r = await admin_api.send("POST", "/api/admin/open/topups", {"user_id": user_id, "amount": 5})
    assert r.status_code == 201 and r.json()["data"]["balance_after"] == MAX_BIGINT
    assert await _balance(pool, user_id) == (MAX_BIGINT, 1)


# -- constraint violations -----------------------------------------------------------


async def test_channel_constraint_violations_are_4xx(admin_api: Admin) -> None:
    first, second = await admin_api.channel(), await admin_api.channel()
    r = await admin_api.send("POST", "/api/admin/open/channels", {**first, "credentials": {}})
    assert r.status_code == 422  # unknown keys (id, created_at, ...) are refused first
    r = await admin_api.send(
        "POST", "/api/admin/open/channels", {"name": first["name"], "provider": "aliyun"}
    )
    assert refused(r, 409, "name")["code"] == "DUPLICATE"
    r = await admin_api.send(
        "PATCH", f"/api/admin/open/channels/{second['id']}", {"name": first["name"]}
    )
    assert refused(r, 409, "name")["code"] == "DUPLICATE"
    r = await admin_api.send("PATCH", f"/api/admin/open/channels/{MAX_BIGINT}", {"weight": 2})
    refused(r, 404)
    r = await admin_api.send("DELETE", f"/api/admin/open/channels/{MAX_BIGINT}")
    refused(r, 404)


async def test_ability_routes_to_missing_rows_are_404_naming_the_field(admin_api: Admin) -> None:
    channel = await admin_api.channel()
    route = {"group": "default", "ability": "video.play_url", "channel_id": channel["id"]}
    for change, field in (
        ({"channel_id": MAX_BIGINT}, "channel_id"),
        ({"group": f"nogroup{secrets.token_hex(3)}"}, "group"),
        ({"ability": "not.priced"}, "ability"),
    ):
        r = await admin_api.send("POST", "/api/admin/open/abilities", {**route, **change})
        refused(r, 404, field)
    r = await admin_api.send("POST", "/api/admin/open/abilities", route)
    assert r.status_code == 200, r.text
    r = await admin_api.send("DELETE", f"/api/admin/open/abilities/{MAX_BIGINT}")
    refused(r, 404)


async def test_group_membership_of_missing_rows_is_404_naming_the_field(
    admin_api: Admin, make_user: MakeUser
) -> None:
    user_id = await make_user()
    group = f"g{secrets.token_hex(4)}"
    r = await admin_api.send("POST", "/api/admin/open/groups", {"name": group, "ratio": "0.5"})
    assert r.status_code == 200, r.text
    for body, field in (
        ({"user_id": MAX_BIGINT, "group": group}, "user_id"),
        ({"user_id": MAX_BIGINT, "group": "default"}, "user_id"),
        ({"user_id": user_id, "group": f"missing{secrets.token_hex(3)}"}, "group"),
    ):
        r = await admin_api.send("POST", "/api/admin/open/group_members", body)
        refused(r, 404, field)
    for name in (group, "default", "default"):  # 'default' is having no membership row
        body = {"user_id": user_id, "group": name}
        r = await admin_api.send("POST", "/api/admin/open/group_members", body)
        assert r.status_code == 200, r.text


async def test_token_and_ledger_conflicts_are_4xx(
    admin_api: Admin, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user_id, other = await make_user(), await make_user()
    token = await admin_api.token(user_id)
    r = await admin_api.send("PATCH", f"/api/tokens/{token['id']}", {"name": "x"}, user=other)
    refused(r, 404)
    r = await admin_api.send(
        "PATCH", f"/api/admin/open/tokens/{MAX_BIGINT}", {"status": "disabled"}
    )
    refused(r, 404)
    body = {"user_id": user_id, "amount": 10, "reference": f"ref-{uuid.uuid4()}"}
    r = await admin_api.send("POST", "/api/admin/open/topups", body)
    assert r.status_code == 201 and r.json()["data"]["replayed"] is False
    r = await admin_api.send("POST", "/api/admin/open/topups", body)
    assert r.status_code == 201 and r.json()["data"]["replayed"] is True
    for change in ({"amount": 11}, {"user_id": other}):
        r = await admin_api.send("POST", "/api/admin/open/topups", {**body, **change})
        refused(r, 409, "reference")
    assert await _balance(pool, user_id) == (10, 1)
    assert await _balance(pool, other) == (0, 0)


# -- absent is not null; tokens born valid -------------------------------------------


async def test_a_price_or_group_sent_without_description_keeps_it(admin_api: Admin) -> None:
    ability = f"probe.p{secrets.token_hex(3)}"
    for path, key, first, second in (
        ("/api/admin/open/prices", {"ability": ability}, {"price": 5}, {"price": 6}),
        (
            "/api/admin/open/groups",
            {"name": f"g{secrets.token_hex(4)}"},
            {"ratio": "0.5"},
            {"ratio": "0.75"},
        ),
    ):
        r = await admin_api.send("POST", path, {**key, **first, "description": "原说明"})
        assert r.status_code == 200 and r.json()["data"]["description"] == "原说明", r.text
        r = await admin_api.send("POST", path, {**key, **second})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["description"] == "原说明"
        r = await admin_api.send("POST", path, {**key, **second, "description": ""})
        assert r.json()["data"]["description"] == ""


async def test_a_token_refuses_a_past_expiry_and_unknown_abilities(
    admin_api: Admin, make_user: MakeUser
) -> None:
    user_id = await make_user()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await admin_api.send("POST", "/api/tokens", {"expired_time": past}, user=user_id)
    assert "过期时间" in refused(r, 422, "expired_time")["message"]
    wanted = ["video.play_url", "video.teleport"]
    r = await admin_api.send("POST", "/api/tokens", {"allowed_abilities": wanted}, user=user_id)
    assert "video.teleport" in refused(r, 422, "allowed_abilities")["message"]
    token = await admin_api.token(user_id, allowed_abilities=["video.play_url"])
    r = await admin_api.send(
        "PATCH", f"/api/tokens/{token['id']}", {"allowed_abilities": wanted}, user=user_id
    )
    refused(r, 422, "allowed_abilities")
    r = await admin_api.send("GET", f"/api/tokens/{token['id']}", user=user_id)
    assert r.json()["data"]["allowed_abilities"] == ["video.play_url"]
    r = await admin_api.send("GET", "/api/tokens", user=user_id)
    assert [t["id"] for t in r.json()["data"]] == [token["id"]]
