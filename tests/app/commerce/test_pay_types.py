"""Every pay type end to end against the signature-checking stand-ins, through the
HTTP API of the running app: order -> launch (what the front end gets, checked by the
stand-in as the provider / its client SDK would) -> signed notification -> paid order
-> active subscription. Plus the order API's refusals for pay types."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.sandbox.payments import AlipayStub, WechatPayStub

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

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _open_alipay(stub: AlipayStub, method: str, payment: dict[str, Any]) -> dict[str, Any]:
    """What the buyer's side does with the launch; returns the stand-in's trade."""
    if method in ("page", "wap"):
        assert payment["pay_url"].startswith(stub.gateway_url)
        return stub.accept_pay_url(payment["pay_url"])
    if method == "app":
        assert payment.get("pay_url") is None
        return stub.accept_order_string(payment["order_string"])
    assert payment["qr_code"].startswith("https://qr.alipay.com/")
    return stub.trades[payment["out_trade_no"]]  # precreate: Alipay made the trade


@pytest.mark.parametrize("method", ["page", "wap", "app", "precreate"])
async def test_alipay_pay_type_from_order_to_subscription(
    method: str,
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    paid_transitions: None,
) -> None:
    plan = await make_plan(level=2, days=30, price_fen=1990)
    checkout = await order_for(buyer, plan, "alipay", method)
    payment = checkout["payment"]
    assert payment["method"] == method
    trade = _open_alipay(shop_alipay, method, payment)
    assert trade["total_amount"] == "19.90" and trade["trade_status"] == "WAIT_BUYER_PAY"

    no = payment["out_trade_no"]
    shop_alipay.mark_paid(no)
    r = await post_alipay(shop, shop_alipay.notification(no))
    assert r.text == "success"
    row = await order_row(checkout["order"]["id"])
    assert row["status"] == "paid"
    assert await paid_transition_count(row["id"]) == 1
    assert [g["level"] for g in await grants_for(buyer.id)] == [2]
    assert await level_of(buyer.id) == 2
    r = await shop.get("/api/subscription", headers=buyer.headers)
    assert r.json()["data"]["active"] is True


def _open_wechat(stub: WechatPayStub, method: str, payment: dict[str, Any]) -> str:
    """Check the launch as WeChat's client would; returns the appid the trade is under."""
    trade = stub.trades[payment["out_trade_no"]]
    if method == "native":
        assert payment["code_url"].startswith("weixin://wxpay/bizpayurl")
    elif method == "h5":
        assert payment["h5_url"].startswith("https://wx.tenpay.com/")
        assert trade["prepay_id"] in payment["h5_url"]
        assert trade["trade_type"] == "MWEB"
    else:
        params = payment["app_params"] if method == "app" else payment["jsapi_params"]
        assert stub.check_client_params(params) == trade["prepay_id"] == payment["prepay_id"]
    appid: str = trade["appid"]
    return appid


@pytest.mark.parametrize(
    ("method", "appid_attr"),
    [
        ("native", "app_id"),
        ("jsapi", "app_id"),
        ("h5", "app_id"),
        ("app", "mobile_app_id"),
        ("miniprogram", "miniprogram_app_id"),
    ],
)
async def test_wechat_pay_type_from_order_to_subscription(
    method: str,
    appid_attr: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    paid_transitions: None,
) -> None:
    plan = await make_plan(level=3, days=7, price_fen=990)
    extra = {"payer_openid": OPENID} if method in ("jsapi", "miniprogram") else {}
    checkout = await order_for(buyer, plan, "wechat", method, **extra)
    payment = checkout["payment"]
    assert payment["method"] == method
    # Each type pays under its own appid: the mini program's and the app's are not the site's.
    assert _open_wechat(shop_wechat, method, payment) == getattr(shop_wechat, appid_attr)
    sent = shop_wechat.calls[-1].params
    if method == "h5":
        # The buyer's address as the app saw it (the test client is 10.0.0.2).
        assert sent["scene_info"] == {"payer_client_ip": "10.0.0.2", "h5_info": {"type": "Wap"}}
    if extra:
        assert sent["payer"] == {"openid": OPENID}

    no = payment["out_trade_no"]
    shop_wechat.mark_paid(no, OPENID)
    r = await post_wechat(shop, *shop_wechat.notification(no))
    assert r.status_code == 204, r.text
    row = await order_row(checkout["order"]["id"])
    assert row["status"] == "paid"
    assert await paid_transition_count(row["id"]) == 1
    assert [g["level"] for g in await grants_for(buyer.id)] == [3]
    assert await level_of(buyer.id) == 3


async def test_a_notification_under_an_appid_not_ours_is_refused(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "miniprogram", payer_openid=OPENID)
    no = checkout["payment"]["out_trade_no"]
    trade = shop_wechat.mark_paid(no, OPENID)
    resource = {**trade, "appid": "wx0000000000000000"}
    r = await post_wechat(shop, *shop_wechat.notification(no, resource=resource))
    assert r.status_code == 400
    assert (await order_row(checkout["order"]["id"]))["status"] == "pending"


async def _counts(user_id: int) -> tuple[int, int]:
    from luser_db import Db

    rec = await Db.find_first(
        "SELECT (SELECT count(*) FROM orders WHERE user_id = ?) AS o,"
        " (SELECT count(*) FROM payment_attempts a JOIN orders d ON d.id = a.order_id"
        "  WHERE d.user_id = ?) AS a",
        user_id,
        user_id,
    )
    assert rec is not None
    return rec["o"], rec["a"]


@pytest.mark.parametrize(
    ("provider", "method", "extra", "field"),
    [
        ("wechat", "bitcoin", {}, "method"),  # no such pay type
        ("alipay", "h5", {}, "method"),  # a WeChat type asked of Alipay
        ("wechat", "precreate", {}, "method"),  # an Alipay type asked of WeChat
        ("wechat", "jsapi", {}, "payer_openid"),
        ("wechat", "miniprogram", {"payer_openid": "  "}, "payer_openid"),
    ],
)
async def test_bad_pay_types_are_refused_in_chinese_and_write_nothing(
    provider: str,
    method: str,
    extra: dict[str, Any],
    field: str,
    shop: httpx.AsyncClient,
    buyer: Buyer,
    plan: dict[str, Any],
) -> None:
    before = await _counts(buyer.id)
    body = {"plan_id": plan["id"], "provider": provider, "method": method, **extra}
    r = await shop.post("/api/orders", headers=buyer.headers, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["field"] == field
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"]), error["message"]
    assert await _counts(buyer.id) == before
