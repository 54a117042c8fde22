"""A full purchase per provider, through the HTTP API of the running app:
order -> payment launch -> provider notification -> paid order -> active subscription
-> the play entitlement sees the plan's level."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from app.commerce import SubscriptionEntitlements
from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_db import Db

from .conftest import (
    Buyer,
    MakePlan,
    Order,
    grants_for,
    level_of,
    order_row,
    paid_transition_count,
    post_alipay,
    post_wechat,
)


async def test_play_reads_the_subscription(shop_app: Starlette) -> None:
    assert isinstance(shop_app.state.services.player.entitlements, SubscriptionEntitlements)


async def test_alipay_purchase_from_order_to_subscription(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    paid_transitions: None,
) -> None:
    plan = await make_plan(level=2, days=30, price_fen=2990)
    checkout = await order_for(buyer, plan, "alipay", "page")
    order, payment = checkout["order"], checkout["payment"]
    assert order["status"] == "pending" and order["amount_fen"] == 2990
    assert payment["pay_url"].startswith(shop_alipay.gateway_url)
    no = payment["out_trade_no"]
    trade = shop_alipay.accept_pay_url(payment["pay_url"])  # the signature holds
    assert trade["total_amount"] == "29.90"
    assert await level_of(buyer.id) == 0

    shop_alipay.mark_paid(no)
    r = await post_alipay(shop, shop_alipay.notification(no))
    assert r.status_code == 200 and r.text == "success"

    r = await shop.get(f"/api/orders/{order['id']}", headers=buyer.headers)
    data = r.json()["data"]
    assert data["status"] == "paid" and data["paid_at"]
    assert data["attempts"][0]["status"] == "succeeded"
    assert data["attempts"][0]["trade_no"] == trade["trade_no"]
    r = await shop.get("/api/subscription", headers=buyer.headers)
    sub = r.json()["data"]
    assert sub["active"] is True and sub["level"] == 2 and len(sub["periods"]) == 1
    assert await level_of(buyer.id) == 2

    # A resend, then TRADE_FINISHED after TRADE_SUCCESS: acknowledged, nothing more granted.
    r = await post_alipay(shop, shop_alipay.notification(no))
    assert r.text == "success"
    shop_alipay.mark_paid(no, "TRADE_FINISHED")
    r = await post_alipay(shop, shop_alipay.notification(no))
    assert r.text == "success"
    assert len(await grants_for(buyer.id)) == 1
    assert await paid_transition_count(order["id"]) == 1


async def test_wechat_native_purchase_from_order_to_subscription(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    paid_transitions: None,
) -> None:
    plan = await make_plan(level=3, days=7, price_fen=1000)
    checkout = await order_for(buyer, plan, "wechat", "native")
    payment = checkout["payment"]
    assert payment["code_url"].startswith("weixin://wxpay/bizpayurl")
    no = payment["out_trade_no"]
    assert shop_wechat.trades[no]["amount"]["total"] == 1000

    shop_wechat.mark_paid(no)
    headers, body = shop_wechat.notification(no)
    r = await post_wechat(shop, headers, body)
    assert r.status_code == 204, r.text

    row = await order_row(checkout["order"]["id"])
    assert row["status"] == "paid"
    grants = await grants_for(buyer.id)
    assert len(grants) == 1 and grants[0]["level"] == 3
    assert grants[0]["ends_at"] - grants[0]["starts_at"] == 7 * 86400 * _second()
    assert await level_of(buyer.id) == 3
    # The same event again (WeChat resends with the same id): 204, no second grant.
    r = await post_wechat(shop, headers, body)
    assert r.status_code == 204
    assert len(await grants_for(buyer.id)) == 1
    assert await paid_transition_count(checkout["order"]["id"]) == 1


async def test_wechat_jsapi_returns_signed_bridge_parameters(
    shop: httpx.AsyncClient, buyer: Buyer, plan: dict[str, Any], order_for: Order
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "jsapi", payer_openid="oUpF8uMuAJO_M2px")
    params = checkout["payment"]["jsapi_params"]
    assert params["package"].startswith("prepay_id=") and params["paySign"]
    r = await shop.post(
        "/api/orders",
        headers=buyer.headers,
        json={"plan_id": plan["id"], "provider": "wechat", "method": "jsapi"},
    )
    assert r.status_code == 422


async def test_refused_jsapi_checkout_writes_nothing(
    shop: httpx.AsyncClient, buyer: Buyer, plan: dict[str, Any], order_for: Order
) -> None:
    # A pending order, then a JSAPI pay without payer_openid: both are refused before
    # any order or attempt row is written (they used to be saved, then the 422 came).
    pending = await order_for(buyer, plan)
    before = await _rows_of(buyer.id)
    for path, extra in (
        ("/api/orders", {"plan_id": plan["id"]}),
        (
            f"/api/orders/{pending['order']['id']}/pay",
            {},
        ),
    ):
        for openid in ({}, {"payer_openid": ""}, {"payer_openid": "   "}):
            body = {**extra, "provider": "wechat", "method": "jsapi", **openid}
            r = await shop.post(path, headers=buyer.headers, json=body)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_ERROR" and error["field"] == "payer_openid"
            assert "openid" in error["message"]
    assert await _rows_of(buyer.id) == before


async def _rows_of(user_id: int) -> tuple[int, int]:
    counts = await Db.find_first(
        "SELECT (SELECT count(*) FROM orders WHERE user_id = ?) AS orders,"
        " (SELECT count(*) FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
        "  WHERE o.user_id = ?) AS attempts",
        user_id,
        user_id,
    )
    assert counts is not None
    return counts["orders"], counts["attempts"]


async def test_buying_again_extends_and_orders_are_private(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    make_buyer: Any,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(level=1, days=10)
    for _ in range(2):
        checkout = await order_for(buyer, plan)
        no = checkout["payment"]["out_trade_no"]
        shop_wechat.mark_paid(no)
        assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    r = await shop.get("/api/subscription", headers=buyer.headers)
    sub = r.json()["data"]
    assert len(sub["periods"]) == 2
    assert sub["periods"][0]["ends_at"] == sub["periods"][1]["starts_at"]
    r = await shop.get("/api/orders?status=paid", headers=buyer.headers)
    assert r.json()["data"]["total_row"] == 2

    other = await make_buyer()
    r = await shop.get(f"/api/orders/{checkout['order']['id']}", headers=other.headers)
    assert r.status_code == 404
    r = await shop.get("/api/orders", headers=other.headers)
    assert r.json()["data"]["total_row"] == 0


async def test_retry_reuses_the_attempt_switching_channel_gets_a_new_number(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    order_id, first = checkout["order"]["id"], checkout["payment"]
    r = await shop.post(
        f"/api/orders/{order_id}/pay",
        headers=buyer.headers,
        json={"provider": "wechat", "method": "native"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["payment"] == first  # same out_trade_no and code_url
    r = await shop.post(
        f"/api/orders/{order_id}/pay",
        headers=buyer.headers,
        json={"provider": "alipay", "method": "wap"},
    )
    second = r.json()["data"]["payment"]
    assert second["out_trade_no"] != first["out_trade_no"]
    r = await shop.get(f"/api/orders/{order_id}", headers=buyer.headers)
    numbers = [a["out_trade_no"] for a in r.json()["data"]["attempts"]]
    assert len(numbers) == len(set(numbers)) == 2


async def test_cancel_closes_the_trade_then_the_order(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan)
    no = checkout["payment"]["out_trade_no"]
    r = await shop.post(f"/api/orders/{checkout['order']['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "closed"
    assert shop_wechat.trades[no]["trade_state"] == "CLOSED"
    r = await shop.post(
        f"/api/orders/{checkout['order']['id']}/pay",
        headers=buyer.headers,
        json={"provider": "wechat", "method": "native"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_NOT_PAYABLE"


async def test_inactive_or_unknown_plan_cannot_be_ordered(
    shop: httpx.AsyncClient, buyer: Buyer, make_plan: MakePlan
) -> None:
    plan = await make_plan(active=False)
    for plan_id in (plan["id"], 999_999_999):
        r = await shop.post(
            "/api/orders",
            headers=buyer.headers,
            json={"plan_id": plan_id, "provider": "wechat", "method": "native"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "PLAN_UNAVAILABLE"
    r = await shop.post(
        "/api/orders", json={"plan_id": 1, "provider": "wechat", "method": "native"}
    )
    assert r.status_code == 401


def _second() -> Any:
    from datetime import timedelta

    return timedelta(seconds=1)


async def test_payments_feature_switch_refuses_new_orders(
    shop: httpx.AsyncClient,
    commerce: Any,
    buyer: Buyer,
    plan: dict[str, Any],
    monkeypatch: Any,
) -> None:
    features = commerce.config.features.model_copy(update={"payments": False})
    config = commerce.config.model_copy(update={"features": features})
    monkeypatch.setattr(commerce, "config", config)
    r = await shop.post(
        "/api/orders",
        headers=buyer.headers,
        json={"plan_id": plan["id"], "provider": "wechat", "method": "native"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "PAYMENTS_DISABLED"


def test_the_app_serves_every_commerce_operation_once() -> None:
    from app import create_app
    from app.commerce.feature import feature

    service = create_app()
    keys = [(r.path, m) for r in service.routes for m in getattr(r, "methods", None) or ()]
    assert feature.operations
    for op in feature.operations:
        assert keys.count((op.path, op.method)) == 1, op.path


async def test_play_unlocks_with_the_subscription_and_locks_after_refund(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    tencent_stub: Any,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    import uuid

    media_id = str(uuid.uuid4().int)[:19]
    tencent_stub.add_media(media_id)
    r = await shop.post(
        "/api/admin/videos",
        headers=shop_admin.headers,
        json={
            "title": "会员专享",
            "provider": "tencent",
            "media_id": media_id,
            "required_level": 2,
        },
    )
    assert r.status_code == 201, r.text
    video_id = r.json()["data"]["id"]
    r = await shop.post(f"/api/admin/videos/{video_id}/publish", headers=shop_admin.headers)
    assert r.status_code == 200, r.text
    play = f"/api/videos/{video_id}/play"
    r = await shop.post(play, headers=buyer.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "PREVIEW_NOT_AVAILABLE"

    checkout = await order_for(buyer, await make_plan(level=2), "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    r = await shop.post(play, headers=buyer.headers)
    assert r.status_code == 200 and r.json()["data"]["preview"] is False

    r = await shop.post(
        f"/api/admin/orders/{checkout['order']['id']}/refund", headers=shop_admin.headers, json={}
    )
    assert r.status_code == 200
    r = await shop.post(play, headers=buyer.headers)
    assert r.status_code == 403


async def test_return_url_must_be_our_own_site(
    shop: httpx.AsyncClient, shop_alipay: AlipayStub, buyer: Buyer, plan: dict[str, Any]
) -> None:
    body = {"plan_id": plan["id"], "provider": "alipay", "method": "page"}
    r = await shop.post(
        "/api/orders",
        headers=buyer.headers,
        json={**body, "return_url": "https://evil.example.net/paid"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "return_url"
    r = await shop.get("/api/orders", headers=buyer.headers)
    assert r.json()["data"]["total_row"] == 0  # refused before anything was created
    r = await shop.post(
        "/api/orders",
        headers=buyer.headers,
        json={**body, "return_url": "https://shop.example.com/orders/7"},
    )
    assert r.status_code == 201, r.text
    assert "shop.example.com%2Forders%2F7" in r.json()["data"]["payment"]["pay_url"]
