"""A newcomer's journey in sandbox mode, over real HTTP only: browse → subscribe → pay
(Alipay cashier page, WeChat native scan page) → play (a real video, byte ranges).

The service runs under uvicorn with its lifespan on a socket bound beforehand, so the
config knows the port the sandbox's signed notifications must reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from app import create_app
from app.container import LoginLimiter
from app.seed import seed_demo_data, with_services
from app.settings import AppConfig

from .conftest import detached_pool
from .live_service import own_database, sign_up

FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread: no signals
        pass


@contextlib.contextmanager
def sandbox_service(config: AppConfig) -> Iterator[str]:
    """The service in sandbox mode on a port chosen before it starts; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = config.model_copy(
        update={
            "server": config.server.model_copy(update={"port": port}),
            "sandbox": config.sandbox.model_copy(update={"enabled": True}),
        }
    )
    app = create_app(config, login_limiter=LoginLimiter(attempts=100_000))
    server = _Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # a poll with a deadline: uvicorn offers no event
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
async def detached(app_config: AppConfig) -> object:
    async with detached_pool(app_config):
        yield


@pytest.fixture(scope="module")
def service(app_config: AppConfig, detached: None) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a seeded service in sandbox mode."""
    with own_database() as url:
        config = app_config.model_copy(
            update={"database": app_config.database.model_copy(update={"url": SecretStr(url)})}
        )
        assert asyncio.run(with_services(lambda s: seed_demo_data(s.accounts), config))
        with sandbox_service(config) as base:
            yield base, url


def _press_pay(browser: httpx.Client, page_url: str) -> httpx.Response:
    """Open a sandbox payment page and press its "支付" button (submit its form)."""
    page = browser.get(page_url)
    assert page.status_code == 200, page.text
    assert "支付" in page.text
    match = FORM.search(page.text)
    assert match is not None, page.text
    fields = dict(HIDDEN.findall(match.group(2)))
    return browser.post(urljoin(page_url, match.group(1)), data=fields)


def _member_video(api: httpx.Client) -> dict[str, object]:
    r = api.get("/api/videos", params={"size": 50})
    assert r.status_code == 200, r.text
    videos = r.json()["data"]["items"]
    member = [v for v in videos if v["required_level"] >= 1 and v["preview_seconds"] == 0]
    assert member, videos
    return dict(member[0])


def _journey(base: str, db_url: str, provider: str, method: str) -> tuple[int, str]:
    """Browse, subscribe, pay at the sandbox page, play; (order id, user JWT)."""
    with httpx.Client(base_url=base, timeout=30) as api, httpx.Client(timeout=30) as browser:
        video = _member_video(api)
        plans = api.get("/api/plans").json()["data"]
        assert plans, "the demo seed sells plans"
        _, jwt = sign_up(api, db_url)
        auth = {"Authorization": f"Bearer {jwt}"}
        before = api.post(f"/api/videos/{video['id']}/play", headers=auth)
        assert before.status_code == 403, before.text  # members only, no preview

        r = api.post(
            "/api/orders",
            json={"plan_id": plans[0]["id"], "provider": provider, "method": method},
            headers=auth,
        )
        assert r.status_code in (200, 201), r.text
        order, payment = r.json()["data"]["order"], r.json()["data"]["payment"]
        page_url = payment["pay_url"] if provider == "alipay" else payment["code_url"]
        assert page_url.startswith("http://127.0.0.1:"), payment

        paid = _press_pay(browser, page_url)
        assert paid.status_code == 200, paid.text
        assert "支付成功" in paid.text
        if provider == "alipay":  # the cashier leads back to the site's orders page
            assert f'<a href="{base}/me/orders">返回商户</a>' in paid.text

        detail = api.get(f"/api/orders/{order['id']}", headers=auth).json()["data"]
        assert detail["status"] == "paid", detail
        subscription = api.get("/api/subscription", headers=auth).json()["data"]
        assert subscription["active"] is True, subscription

        play = api.post(f"/api/videos/{video['id']}/play", headers=auth)
        assert play.status_code == 200, play.text
        grant = play.json()["data"]
        assert grant["preview"] is False
        part = browser.get(grant["url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206, part.text
        assert len(part.content) == 100
        assert part.content[4:8] == b"ftyp"  # an MP4's first box
        assert part.headers["content-type"] == "video/mp4"
        size = int(part.headers["content-range"].rsplit("/", 1)[1])
        whole = browser.get(grant["url"])
        assert whole.status_code == 200 and len(whole.content) == size
        return int(order["id"]), jwt


def test_alipay_page_checkout_pays_at_the_sandbox_cashier_and_plays(
    service: tuple[str, str],
) -> None:
    _journey(*service, "alipay", "page")


def test_wechat_native_code_url_is_scanned_in_the_sandbox_and_plays(
    service: tuple[str, str],
) -> None:
    _journey(*service, "wechat", "native")


def test_a_sandbox_order_is_refunded_by_the_admin(service: tuple[str, str]) -> None:
    base, db_url = service
    order_id, _ = _journey(base, db_url, "alipay", "wap")
    with httpx.Client(base_url=base, timeout=30) as api:
        _, admin_jwt = sign_up(api, db_url, admin=True)
        admin = {"Authorization": f"Bearer {admin_jwt}"}
        r = api.post(
            f"/api/admin/orders/{order_id}/refund", json={"reason": "沙箱退款"}, headers=admin
        )
        assert r.status_code in (200, 201), r.text
        assert r.json()["data"]["status"] == "succeeded", r.text
        order = api.get(f"/api/admin/orders/{order_id}", headers=admin).json()["data"]
        assert order["status"] == "refunded", order
        report = api.post("/api/admin/payments/reconcile", headers=admin)
        assert report.status_code == 200, report.text
        assert report.json()["data"]["errors"] == 0
