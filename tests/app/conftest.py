"""Service test fixtures: a migrated database, VOD stubs, the app with its lifespan on,
and an httpx client talking to it in process (ASGITransport).

Fixture names are specific (``service_app``, ``api``, ...) because this conftest
also covers the sibling folders owned by other parts of the service.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import luser_db
from app import create_app
from app.container import LoginLimiter
from app.files import MIGRATIONS_DIR
from app.lifespan import init_database
from app.sandbox.vod import PROXY_ENV_VARS, AliyunVodStub, TencentVodStub
from app.settings import AppConfig
from luser_db.migrations import Migrator

from .response_shapes import shape_check

MIGRATIONS = str(MIGRATIONS_DIR)
PASSWORD = "s3cret-Passw0rd"
TENCENT_CALLBACK_TOKEN = "tc-callback-token"
ALIYUN_CALLBACK_KEY = "ali-callback-key"
ALIYUN_CALLBACK_URL = "https://svc.example.com/api/vod/callbacks/aliyun"


@pytest.fixture(scope="session")
def no_proxy_env() -> Iterator[None]:
    # The provider SDKs honour proxy variables; the stubs live on 127.0.0.1.
    saved = {name: os.environ.pop(name) for name in PROXY_ENV_VARS if name in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tencent_stub(no_proxy_env: None) -> Iterator[TencentVodStub]:
    with TencentVodStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def aliyun_stub(no_proxy_env: None) -> Iterator[AliyunVodStub]:
    with AliyunVodStub() as stub:
        yield stub


@pytest.fixture(scope="session")
async def migrated_url(database_url: str) -> str:
    # The whole service schema: create_app installs every feature (open API included).
    await Migrator(database_url, directory=MIGRATIONS).up()
    return database_url


@pytest.fixture(scope="session")
def app_config(
    migrated_url: str, tencent_stub: TencentVodStub, aliyun_stub: AliyunVodStub
) -> AppConfig:
    return AppConfig.model_validate(
        {
            "env": "test",
            "database": {"url": migrated_url, "max_connections": 5, "min_connections": 1},
            "jwt": {"secret": "test-jwt-secret-0123456789abcdef", "access_ttl_seconds": 300},
            # Notifications are delivered by the tests that need them, never in the background.
            "notifications": {"drain_interval_seconds": 0},
            "vod": {
                # The VOD jobs are run by the tests that need them, never in the background.
                "jobs_interval_seconds": 0,
                "tencent": tencent_stub.config(
                    play_domain="1500000000.vod2.myqcloud.com",
                    play_key="tencent-play-key",
                    callback_token=TENCENT_CALLBACK_TOKEN,
                ).model_dump(),
                "aliyun": aliyun_stub.config(
                    play_domain="vod.example.com",
                    url_auth_key="aliyun-auth-key",
                    callback_private_key=ALIYUN_CALLBACK_KEY,
                    callback_url=ALIYUN_CALLBACK_URL,
                ).model_dump(),
            },
        }
    )


@contextlib.asynccontextmanager
async def detached_pool(app_config: AppConfig) -> AsyncIterator[None]:
    """Release the process-wide pool so code running on another event loop (a uvicorn
    thread, ``asyncio.run`` in a CLI command) can open its own; restore it afterwards."""
    await luser_db.close()
    luser_db.reset()
    try:
        yield
    finally:
        await luser_db.close()
        luser_db.reset()
        init_database(app_config)


class Levels:
    """An EntitlementChecker whose answers tests set per user."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}

    async def level_for(self, user_id: int) -> int:
        return self.levels.get(user_id, 0)


@pytest.fixture(scope="session")
def levels() -> Levels:
    return Levels()


@pytest.fixture(scope="session")
async def service_app(app_config: AppConfig, levels: Levels) -> AsyncIterator[Starlette]:
    app = create_app(app_config, entitlements=levels, login_limiter=LoginLimiter(attempts=5))
    async with app.router.lifespan_context(app):
        yield app
    # The lifespan closed the process-wide pool; leave it usable for fixtures of sibling
    # folders that tear down after this one in the same session.
    luser_db.reset()
    init_database(app_config)


@pytest.fixture(scope="session")
async def api(service_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service_app, client=("10.0.0.1", 1234))
    hooks = {"response": [shape_check(service_app)]}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=hooks
    ) as client:
        yield client


@dataclass
class Account:
    id: int
    account: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.com"


def unique_phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


MakeAccount = Callable[..., Awaitable[Account]]


@pytest.fixture(scope="session")
def make_account(api: httpx.AsyncClient, service_app: Starlette) -> MakeAccount:
    async def make(
        *, admin: bool = False, phone: bool = False, password: str = PASSWORD
    ) -> Account:
        account = unique_phone() if phone else unique_email()
        if admin:
            await service_app.state.services.accounts.create_admin(account, password)
        else:
            key = "phone" if phone else "email"
            r = await api.post("/api/auth/register", json={key: account, "password": password})
            assert r.status_code == 201, r.text
        r = await api.post("/api/auth/login", json={"account": account, "password": password})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return Account(
            data["user"]["id"], account, password, data["access_token"], data["refresh_token"]
        )

    return make


@pytest.fixture(scope="session")
async def admin(make_account: MakeAccount) -> Account:
    return await make_account(admin=True)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["success"] is False, body
    return str(body["error"]["code"])
