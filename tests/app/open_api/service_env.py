"""The service as the open API tests drive it: a real app over ASGI, two Tencent VOD stubs
on 127.0.0.1 as channels A (priority 10) and B, a published video, partners with keys."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app import create_app
from app.accounts.security import AccessTokens
from app.lifespan import init_database
from app.open_api.feature import feature as open_api_feature
from app.open_api.service import OpenApi
from app.sandbox.vod import PROXY_ENV_VARS, TencentVodStub
from app.settings import AppConfig

from ..response_shapes import shape_check
from .conftest import PEPPER

__all__ = ["PRICE", "Env", "env", "flush", "partner", "play", "sk", "stubs"]

PRICE = 10_000_000  # video.play_url, seeded by migration 0031


@pytest.fixture(scope="module")
def stubs() -> AsyncIterator[tuple[TencentVodStub, TencentVodStub]]:
    saved = {k: os.environ.pop(k) for k in PROXY_ENV_VARS if k in os.environ}
    a = TencentVodStub("AKIDstubChannelA0000", "stubKeyA")
    b = TencentVodStub("AKIDstubChannelB0000", "stubKeyB")
    with a, b:
        for stub in (a, b):
            stub.add_media("528589078170001", name="demo")
        yield a, b
    os.environ.update(saved)


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, config: AppConfig) -> None:
        self.client = client
        self.app = app
        self.config = config
        self.channels: dict[str, int] = {}
        self.video_id = 0
        self.admin_jwt = ""

    @property
    def service(self) -> OpenApi:
        return self.app.state.services.open_api  # type: ignore[no-any-return]

    def jwt(self, user_id: int, role: str = "user") -> dict[str, str]:
        return {"Authorization": f"Bearer {AccessTokens(self.config.jwt).encode(user_id, role)}"}


@pytest.fixture(scope="module")
async def env(
    pool: asyncpg.Pool, migrated_url: str, stubs: tuple[TencentVodStub, TencentVodStub]
) -> AsyncIterator[Env]:
    config = AppConfig.model_validate(
        {
            "database": {"url": migrated_url, "max_connections": 10},
            "open_api": {
                "token_pepper": PEPPER.decode(),
                "log_flush_interval_seconds": 0.05,
                "config_poll_interval_seconds": 3600,
                # Usage reports must be exact without the rollup job: it never runs here.
                "rollup_interval_seconds": 3600,
            },
        }
    )
    app = create_app(config)
    # The app's own startup, minus its shutdown: that closes luser_db's global pools,
    # which sibling test modules of this session may still be using.
    app.state.config = config
    app.state.services = services = app.state.build_services(config)
    init_database(config)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with (
        open_api_feature.lifespan(services),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            event_hooks={"response": [shape_check(app)]},
        ) as client,
    ):
        e = Env(client, app, config)
        async with pool.acquire() as conn:
            admin = await conn.fetchval(
                "INSERT INTO users (email, password_hash, role) "
                "VALUES ($1, 'x', 'admin') RETURNING id",
                f"admin{secrets.token_hex(4)}@example.com",
            )
            e.video_id = await conn.fetchval(
                "INSERT INTO videos "
                "(title, provider, media_id, media_status, status, published_at) VALUES "
                "('demo', 'tencent', '528589078170001', 'ready', 'published', now()) "
                # One video for every module that runs the service in this session.
                "ON CONFLICT (provider, media_id) WHERE media_id IS NOT NULL "
                "AND deleted_at IS NULL DO UPDATE SET title = excluded.title "
                "RETURNING id"
            )
        e.admin_jwt = e.jwt(admin, "admin")["Authorization"]
        for name, stub, priority in (("A", stubs[0], 10), ("B", stubs[1], 0)):
            r = await client.post(
                "/api/admin/open/channels",
                headers={"Authorization": e.admin_jwt},
                json={
                    "name": f"http-{name}-{secrets.token_hex(3)}",
                    "provider": "tencent",
                    "base_url": f"http://{stub.endpoint}",
                    "priority": priority,
                    "weight": 1,
                    "credentials": {"secret_id": stub.secret_id, "secret_key": stub.secret_key},
                },
            )
            assert r.status_code == 201, r.text
            e.channels[name] = r.json()["data"]["id"]
            assert "credentials" not in r.json()["data"]
            for ability in ("video.play_url", "video.upload_auth"):
                r = await client.post(
                    "/api/admin/open/abilities",
                    headers={"Authorization": e.admin_jwt},
                    json={"group": "default", "ability": ability, "channel_id": e.channels[name]},
                )
                assert r.status_code == 200, r.text
        yield e
    await app.state.services.aclose()


async def partner(env: Env, pool: asyncpg.Pool, balance: int, **token: Any) -> tuple[int, str, int]:
    async with pool.acquire() as conn:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
            f"p{secrets.token_hex(5)}@example.com",
        )
    if balance:
        r = await env.client.post(
            "/api/admin/open/topups",
            headers={"Authorization": env.admin_jwt},
            json={"user_id": user_id, "amount": balance},
        )
        assert r.status_code == 201, r.text
    r = await env.client.post("/api/tokens", headers=env.jwt(user_id), json=token)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["key"].startswith("sk-") and "key_hash" not in data
    return user_id, data["key"], data["id"]


def sk(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


async def play(env: Env, key: str, **headers: str) -> httpx.Response:
    return await env.client.get(
        f"/open/v1/videos/{env.video_id}/play_url", headers=sk(key, **headers)
    )


async def flush(env: Env) -> None:
    await env.service.logs.flush()
