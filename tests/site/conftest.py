"""Site fixtures: the app with commerce and the site, sandbox payment stubs, a VOD
stand-in whose play URLs point at a small MP4 served by the app itself, and helpers
to sign up, log in and read forms.

The app shares the session database and the process-wide pool (like tests/app's
apps). The browser tests serve it with uvicorn on the *same* event loop, so every
blocking Selenium call runs in a worker thread (see test_browser.py).
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app import create_app
from app.container import LoginLimiter
from app.files import MIGRATIONS_DIR
from app.sandbox.cashier import SandboxAlipay, SandboxWechat
from app.sandbox.payments import WechatPayStub
from app.sandbox.vod import PROXY_ENV_VARS
from app.settings import AppConfig, payment_config_model
from app.vod.base import SignedUrl
from luser_common import utc_now
from luser_db.migrations import Migrator

MIGRATIONS = str(MIGRATIONS_DIR)
CLIP = Path(__file__).parent / "fixtures" / "clip.mp4"
PASSWORD = "s3cret-Passw0rd"
CLIP_PATH = "/_fixture/clip.mp4"
HLS_PATH = "/_fixture/hls/clip.m3u8"  # media ids starting "hls-" play the HLS rendition


class ClipProvider:
    """A VOD provider whose every media plays the committed fixture clip; the URL says
    whether it is the preview or the full video."""

    name = "tencent"

    async def play_url(
        self,
        media: str,
        *,
        preview_seconds: int | None = None,
        ttl: int | None = None,
        client_ip: str | None = None,
    ) -> SignedUrl:
        kind = f"preview={preview_seconds}" if preview_seconds else "full=1"
        path = HLS_PATH if media.startswith("hls-") else CLIP_PATH
        return SignedUrl(
            url=f"{path}?media={media}&{kind}",
            expires_at=utc_now() + timedelta(seconds=ttl or 600),
            provider=self.name,
            preview_seconds=preview_seconds,
        )


class ClipLookup:
    def get(self, name: str | None = None) -> Any:
        return ClipProvider()

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="session")
def site_socket() -> Iterator[socket.socket]:
    """The browser tests' server socket, bound first: the sandbox's notifications and
    the cashier's way back need the site's address in the config."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def site_url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
def site_stubs() -> Iterator[tuple[SandboxAlipay, SandboxWechat]]:
    """The sandbox mode's payment stand-ins: Alipay's cashier page, WeChat's scan page."""
    saved = {name: os.environ.pop(name) for name in PROXY_ENV_VARS if name in os.environ}
    with SandboxAlipay() as ali, SandboxWechat() as wx:
        yield ali, wx
    os.environ.update(saved)


@pytest.fixture(scope="session")
async def site_config(
    database_url: str,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
    site_socket: socket.socket,
) -> AppConfig:
    await Migrator(database_url, directory=MIGRATIONS).up()
    ali, wx = site_stubs
    url = site_url(site_socket)
    payment = payment_config_model()(
        reconcile_interval_seconds=86400,
        alipay=ali.sandbox_config(url),
        wechat=wx.sandbox_config(url),
    )
    return AppConfig.model_validate(
        {
            "env": "test",
            "database": {"url": database_url, "max_connections": 10, "min_connections": 1},
            "jwt": {"secret": "site-jwt-secret-0123456789abcdef", "access_ttl_seconds": 600},
            "payment": payment,
        }
    )


async def _clip(request: Any) -> FileResponse:
    return FileResponse(CLIP, media_type="video/mp4")


@pytest.fixture(scope="session")
async def site_app(site_config: AppConfig) -> AsyncIterator[Starlette]:
    app = create_app(
        site_config, providers=ClipLookup(), login_limiter=LoginLimiter(attempts=100_000)
    )
    app.router.routes.append(Route(CLIP_PATH, _clip, methods=["GET", "HEAD"]))
    app.router.routes.append(Mount("/_fixture/hls", StaticFiles(directory=CLIP.parent / "hls")))
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.3", 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def browser_like(site_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh cookie jar per test, asking for pages like a browser does."""
    async with client_for(site_app) as client:
        client.headers["accept"] = "text/html,application/xhtml+xml"
        yield client


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    found = CSRF_RE.search(r.text)
    assert found, r.text
    return found.group(1)


@dataclass
class SiteAccount:
    id: int
    account: str
    password: str = PASSWORD


def unique_email() -> str:
    return f"s{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    token = await csrf_of(client, "/signup")
    data = {"account": unique_email(), "password": PASSWORD, "csrf_token": token, **fields}
    return await client.post("/signup", data=data)


@pytest.fixture(scope="session")
async def site_admin(site_app: Starlette) -> SiteAccount:
    email = unique_email()
    user = await site_app.state.services.accounts.create_admin(email, PASSWORD)
    return SiteAccount(user.id, email)


async def log_in(client: httpx.AsyncClient, account: str, password: str = PASSWORD) -> None:
    token = await csrf_of(client, "/login")
    r = await client.post(
        "/login", data={"account": account, "password": password, "csrf_token": token}
    )
    assert r.status_code == 303, r.text


async def make_video(app: Starlette, *, publish: bool = True, **fields: Any) -> Any:
    catalog = app.state.services.catalog
    values = {
        "title": f"视频 {uuid.uuid4().hex[:6]}",
        "description": "一段测试视频",
        "duration_seconds": 8,
        "media_id": f"m-{uuid.uuid4().hex[:8]}",
        "preview_seconds": 4,
        "required_level": 1,
        **fields,
    }
    video = await catalog.create_video(values)
    if publish:
        video = await catalog.publish(video.id)
    return video


async def make_plan(app: Starlette, **fields: Any) -> Any:
    values = {
        "name": f"月度会员 {uuid.uuid4().hex[:4]}",
        "description": "全站视频",
        "level": 1,
        "duration_days": 30,
        "price_fen": 1990,
        **fields,
    }
    return await app.state.services.commerce.plans.create(**values)


async def pay_with_wechat(app: Starlette, wx: WechatPayStub, order_id: int) -> httpx.Response:
    """The buyer scans and pays in the sandbox; WeChat Pay notifies the service."""
    attempts = await app.state.services.commerce.orders.attempts(order_id)
    out_trade_no = next(a.out_trade_no for a in reversed(attempts) if a.provider == "wechat")
    wx.mark_paid(out_trade_no)
    headers, body = wx.notification(out_trade_no)
    async with client_for(app) as client:
        return await client.post(
            "/api/payments/notify/wechat",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
