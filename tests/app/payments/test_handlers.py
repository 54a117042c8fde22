"""Notification handlers in a Starlette app: exact bytes each provider gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.payments import PaymentNotifyInvalid, PaymentProvider, build_providers
from app.sandbox.payments import AlipayStub, KeyPair, WechatPayStub
from app.settings import PaymentConfig, payment_config_model
from luser_common.errors import NotFound


def _app(providers: dict[str, PaymentProvider], seen: list[str]) -> Starlette:
    async def notify(request: Request) -> Response:
        provider = providers[request.path_params["name"]]
        try:
            note = await provider.verify_notification(request.headers, await request.body())
            note.ensure_amount(3000)
        except PaymentNotifyInvalid as exc:
            return provider.failure_reply(exc)
        seen.append(note.notification_id)
        return provider.success_reply()

    return Starlette(routes=[Route("/notify/{name}", notify, methods=["POST"])])


@pytest.fixture
async def client_and_stubs(
    alipay_stub: AlipayStub, wechat_stub: WechatPayStub
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    config = payment_config_model()(alipay=alipay_stub.config(), wechat=wechat_stub.config())
    registry = build_providers(config)
    providers = {name: registry.get(name) for name in registry.names()}
    seen: list[str] = []
    transport = httpx.ASGITransport(app=_app(providers, seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, seen


async def test_alipay_notify_over_http(
    client_and_stubs: tuple[httpx.AsyncClient, list[str]],
    alipay_stub: AlipayStub,
    keys: dict[str, KeyPair],
) -> None:
    client, seen = client_and_stubs
    alipay_stub.add_trade("ORD20240001", 3000)
    alipay_stub.mark_paid("ORD20240001")
    form = {"content-type": "application/x-www-form-urlencoded"}
    ok = await client.post(
        "/notify/alipay", content=alipay_stub.notification("ORD20240001"), headers=form
    )
    assert (ok.status_code, ok.text) == (200, "success")
    forged = alipay_stub.notification("ORD20240001", keys=keys["evil"])
    bad = await client.post("/notify/alipay", content=forged, headers=form)
    assert (bad.status_code, bad.text) == (200, "failure")
    assert len(seen) == 1


async def test_wechat_notify_over_http(
    client_and_stubs: tuple[httpx.AsyncClient, list[str]], wechat_stub: WechatPayStub
) -> None:
    client, seen = client_and_stubs
    wechat_stub.add_trade("ORD20240001", 3000)
    wechat_stub.mark_paid("ORD20240001")
    headers, body = wechat_stub.notification("ORD20240001", event_id="EV-1")
    ok = await client.post("/notify/wechat", content=body, headers=headers)
    assert ok.status_code == 204 and ok.content == b""
    headers, body = wechat_stub.notification("ORD20240001", apiv3_key="0" * 32)
    bad = await client.post("/notify/wechat", content=body, headers=headers)
    assert bad.status_code == 400
    assert bad.json() == {"code": "FAIL", "message": "微信支付通知解密失败"}  # reason: decrypt
    # Signed and decryptable, but for another amount: refused as a mismatch, not a crash.
    wechat_stub.add_trade("ORD20240002", 1)
    wechat_stub.mark_paid("ORD20240002")
    headers, body = wechat_stub.notification("ORD20240002", event_id="EV-2")
    bad = await client.post("/notify/wechat", content=body, headers=headers)
    assert bad.status_code == 400
    assert bad.json() == {"code": "FAIL", "message": "支付通知金额与订单不符"}
    assert seen == ["EV-1"]


def test_build_providers_only_enabled(alipay_stub: AlipayStub) -> None:
    registry = build_providers(payment_config_model()(alipay=alipay_stub.config()))
    assert registry.names() == ["alipay"] and "alipay" in registry
    with pytest.raises(NotFound):
        registry.get("wechat")
    assert build_providers(PaymentConfig()).names() == []
