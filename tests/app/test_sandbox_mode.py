"""Sandbox mode: when it is on, that production refuses it, and that the stand-ins it
starts answer the providers' SDKs for payment, query (reconciliation), refund and play."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import httpx
import pytest

from app.config_checks import check_production, provider_problems, sandbox_enabled
from app.payments import PaymentMethod, RefundStatus, TradeStatus, build_providers
from app.sandbox import sandbox_mode
from app.sandbox.runtime import service_url
from app.settings import AppConfig
from app.vod import VodRegistry
from luser_common import ConfigError

DB_URL = "postgresql://u@db.example/luser"
PROD = {
    "env": "production",
    "database": {"url": DB_URL},
    "jwt": {"secret": "x" * 40},
    "open_api": {"token_pepper": "p" * 40, "channel_secret_key": "c" * 44},
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"env": "development", "database": {"url": DB_URL}}, True),
        ({"env": "test"}, True),  # the embedded database: a newcomer's `luser serve`
        ({"env": "test", "database": {"url": DB_URL}}, False),
        ({"env": "production"}, False),  # even on the embedded database
        ({"env": "test", "database": {"url": DB_URL}, "sandbox": {"enabled": True}}, True),
        ({"env": "development", "sandbox": {"enabled": False}}, False),
    ],
)
def test_when_the_sandbox_is_on(values: dict[str, object], expected: bool) -> None:
    assert sandbox_enabled(AppConfig.model_validate(values)) is expected


def test_production_refuses_the_sandbox_in_chinese() -> None:
    check_production(AppConfig.model_validate(PROD))  # the same config without it starts
    with pytest.raises(ConfigError) as caught:
        check_production(AppConfig.model_validate({**PROD, "sandbox": {"enabled": True}}))
    assert "sandbox.enabled 不能在生产环境开启" in caught.value.message
    assert caught.value.field == "sandbox.enabled"


def test_the_sandbox_runs_in_one_process_only() -> None:
    several = {"env": "development", "server": {"workers": 2}}
    assert sandbox_enabled(AppConfig.model_validate(several)) is False
    assert provider_problems(AppConfig.model_validate(several)) == []
    asked = AppConfig.model_validate({**several, "sandbox": {"enabled": True}})
    assert any(p.startswith("server.workers") for p in provider_problems(asked))


def test_notifications_go_to_this_server_unless_told_otherwise() -> None:
    assert service_url(AppConfig.model_validate({"server": {"host": "0.0.0.0"}})) == (
        "http://127.0.0.1:8000"
    )
    told = AppConfig.model_validate({"sandbox": {"public_url": "https://demo.example/"}})
    assert service_url(told) == "https://demo.example"


@pytest.fixture
async def sandboxed(no_proxy_env: None) -> AsyncIterator[AppConfig]:
    # Notifications go to a closed port: this is the "notification lost" case.
    config = AppConfig.model_validate(
        {"env": "development", "sandbox": {"public_url": "http://127.0.0.1:9"}}
    )
    async with sandbox_mode(config) as running:
        yield running


async def test_a_payment_whose_notification_was_lost_is_found_by_query_and_refunded(
    sandboxed: AppConfig,
) -> None:
    alipay = build_providers(sandboxed.payment).get("alipay")
    launch = await alipay.create_payment("SBX0000001", "月度会员", 2500, PaymentMethod.PAGE)
    assert launch.pay_url is not None
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(launch.pay_url)
        assert page.status_code == 200 and "支付宝收银台" in page.text
        assert "¥25.00" in page.text
        action = re.search(r'action="([^"]+)"', page.text)
        assert action is not None
        paid = await browser.post(
            urljoin(launch.pay_url, action.group(1)), data={"out_trade_no": "SBX0000001"}
        )
    assert paid.status_code == 502 and "支付通知发送失败" in paid.text
    state = await alipay.query("SBX0000001")  # what reconciliation asks
    assert state.status == TradeStatus.SUCCEEDED and state.amount_fen == 2500
    refund = await alipay.refund("SBX0000001", "SBXR000001", 2500, 2500, "沙箱")
    assert refund.status == RefundStatus.SUCCEEDED
    assert (await alipay.query("SBX0000001")).status == TradeStatus.CLOSED


async def test_a_forged_pay_url_is_refused_by_the_cashier(sandboxed: AppConfig) -> None:
    alipay = build_providers(sandboxed.payment).get("alipay")
    launch = await alipay.create_payment("SBX0000002", "月度会员", 2500, PaymentMethod.WAP)
    assert launch.pay_url is not None
    forged = launch.pay_url.replace("25.00", "0.01")
    assert forged != launch.pay_url
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(forged)
    assert page.status_code == 400 and "签名验证失败" in page.text


async def test_wechat_native_code_url_is_a_scan_page_of_the_sandbox(sandboxed: AppConfig) -> None:
    wechat = build_providers(sandboxed.payment).get("wechat")
    launch = await wechat.create_payment("SBX0000003", "年度会员", 19800, PaymentMethod.NATIVE)
    assert launch.code_url is not None and launch.code_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(launch.code_url)
        assert page.status_code == 200 and "¥198.00" in page.text
        paid = await browser.post(launch.code_url)
    assert paid.status_code == 502  # the notification had nowhere to go
    assert (await wechat.query("SBX0000003")).status == TradeStatus.SUCCEEDED


async def test_play_urls_serve_the_demo_video_by_byte_range(sandboxed: AppConfig) -> None:
    registry = VodRegistry(sandboxed.vod)
    try:
        async with httpx.AsyncClient(timeout=30) as browser:
            for name in ("tencent", "aliyun"):
                signed = await registry.get(name).play_url("any-media-id", preview_seconds=30)
                tail = await browser.get(signed.url, headers={"Range": "bytes=-16"})
                assert tail.status_code == 206, (name, tail.text)
                assert len(tail.content) == 16
                assert tail.headers["content-range"].startswith("bytes ")
                beyond = await browser.get(signed.url, headers={"Range": "bytes=999999-"})
                assert beyond.status_code == 416
        tencent = await registry.get("tencent").play_url("any-media-id")
        tampered = tencent.url.replace("sign=", "sign=0")
        async with httpx.AsyncClient(timeout=30) as browser:
            assert (await browser.get(tampered)).status_code == 403
    finally:
        await registry.aclose()
