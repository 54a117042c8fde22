"""Admin refunds: full refunds revoke the subscription, partial ones shorten it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_db import Db

from .conftest import (
    Buyer,
    MakePlan,
    Order,
    grants_for,
    level_of,
    order_row,
    post_alipay,
    post_wechat,
)

DAY = 86_400


async def _paid_order(
    shop: httpx.AsyncClient,
    stub: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> dict[str, Any]:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    stub.mark_paid(no)
    assert (await post_wechat(shop, *stub.notification(no))).status_code == 204
    return checkout


async def test_full_refund_revokes_the_subscription(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(level=2, days=30, price_fen=3000)
    checkout = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    order_id = checkout["order"]["id"]
    assert await level_of(buyer.id) == 2

    r = await shop.post(
        f"/api/admin/orders/{order_id}/refund",
        headers=shop_admin.headers,
        json={"reason": "用户申请"},
    )
    refunded_by = datetime.now(UTC)
    assert r.status_code == 200, r.text
    refund = r.json()["data"]
    assert refund["status"] == "succeeded" and refund["amount_fen"] == 3000
    row = await order_row(order_id)
    assert row["status"] == "refunded" and row["refunded_fen"] == 3000
    assert await level_of(buyer.id) == 0
    grant = (await grants_for(buyer.id))[0]
    # A full refund keeps only the time already used: no more than had passed by the
    # refund, whatever the machine's speed.
    used = (refunded_by - grant["granted_at"]).total_seconds()
    assert grant["status"] == "revoked" and 0 <= grant["duration_seconds"] <= used
    stub_refund = shop_wechat.refunds[refund["out_refund_no"]]
    assert stub_refund["amount"] == {**stub_refund["amount"], "refund": 3000, "total": 3000}
    r = await shop.post(f"/api/admin/orders/{order_id}/refund", headers=shop_admin.headers, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "REFUND_NOT_ALLOWED"


async def test_partial_refunds_shorten_then_revoke(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(level=1, days=30, price_fen=3000)
    checkout = await order_for(buyer, plan, "alipay", "page")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    assert (await post_alipay(shop, shop_alipay.notification(no))).text == "success"

    url = f"/api/admin/orders/{order_id}/refund"
    r = await shop.post(url, headers=shop_admin.headers, json={"amount_fen": 1000})
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded"
    grant = (await grants_for(buyer.id))[0]
    assert grant["duration_seconds"] == 20 * DAY  # a third of the money, a third of the time
    assert (grant["ends_at"] - grant["starts_at"]).total_seconds() == 20 * DAY
    row = await order_row(order_id)
    assert (row["status"], row["refunded_fen"]) == ("paid", 1000)
    assert await level_of(buyer.id) == 1

    r = await shop.post(url, headers=shop_admin.headers, json={"amount_fen": 2001})
    assert r.status_code == 422 and r.json()["error"]["field"] == "amount_fen"
    r = await shop.post(url, headers=shop_admin.headers, json={})  # the rest
    assert r.status_code == 200 and r.json()["data"]["amount_fen"] == 2000
    assert (await order_row(order_id))["status"] == "refunded"
    assert await level_of(buyer.id) == 0
    assert shop_alipay.trades[no]["trade_status"] == "TRADE_CLOSED"


async def test_refund_of_a_later_grant_pulls_nothing_forward_wrongly(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(level=1, days=10)
    first = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    second = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    r = await shop.get("/api/subscription", headers=buyer.headers)
    before = r.json()["data"]["access_ends_at"]
    r = await shop.post(
        f"/api/admin/orders/{first['order']['id']}/refund", headers=shop_admin.headers, json={}
    )
    assert r.status_code == 200
    # The first grant is revoked; the queued second one now runs from (about) now for 10 days.
    r = await shop.get("/api/subscription", headers=buyer.headers)
    sub = r.json()["data"]
    assert sub["active"] is True and sub["access_ends_at"] < before
    grants = await grants_for(buyer.id)
    assert [g["order_id"] for g in grants] == [first["order"]["id"], second["order"]["id"]]
    assert (grants[1]["ends_at"] - grants[1]["starts_at"]).total_seconds() == 10 * DAY


async def test_processing_refund_completes_on_the_refund_notification(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    shop_wechat.refund_status = "PROCESSING"
    try:
        r = await shop.post(
            f"/api/admin/orders/{checkout['order']['id']}/refund",
            headers=shop_admin.headers,
            json={},
        )
    finally:
        shop_wechat.refund_status = "SUCCESS"
    refund = r.json()["data"]
    assert refund["status"] == "processing"
    assert await level_of(buyer.id) == 0  # the merchant committed to it: access ends now

    no = checkout["payment"]["out_trade_no"]
    trade = shop_wechat.trades[no]
    resource = {
        "mchid": shop_wechat.mch_id,
        "out_trade_no": no,
        "transaction_id": trade["transaction_id"],
        "out_refund_no": refund["out_refund_no"],
        "refund_id": "50000000000000000000000001",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-21T10:00:00+08:00",
        "amount": {
            "total": plan["price_fen"],
            "refund": plan["price_fen"],
            "payer_total": plan["price_fen"],
            "payer_refund": plan["price_fen"],
        },
    }
    headers, body = shop_wechat.notification(no, resource=resource, event_type="REFUND.SUCCESS")
    assert (await post_wechat(shop, headers, body)).status_code == 204
    assert (
        await Db.query_str(
            "SELECT status FROM refunds WHERE out_refund_no = ?", refund["out_refund_no"]
        )
        == "succeeded"
    )


@pytest.mark.parametrize(
    "body", [{"amount_fen": 10.0}, {"amount_fen": 0}, {"amount_fen": "10"}, {"amount_fen": True}]
)
async def test_refund_amount_must_be_an_int_in_fen(
    body: dict[str, Any],
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    r = await shop.post(
        f"/api/admin/orders/{checkout['order']['id']}/refund", headers=shop_admin.headers, json=body
    )
    assert r.status_code in (400, 422), r.text
    assert (await order_row(checkout["order"]["id"]))["refunded_fen"] == 0


async def test_only_admins_refund_and_only_paid_orders(
    shop: httpx.AsyncClient,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan)
    url = f"/api/admin/orders/{checkout['order']['id']}/refund"
    assert (await shop.post(url, headers=buyer.headers, json={})).status_code == 403
    r = await shop.post(url, headers=shop_admin.headers, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "REFUND_NOT_ALLOWED"


async def test_concurrent_full_refunds_refund_once(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await _paid_order(shop, shop_wechat, buyer, plan, order_for)
    url = f"/api/admin/orders/{checkout['order']['id']}/refund"
    replies = await asyncio.gather(
        *(shop.post(url, headers=shop_admin.headers, json={}) for _ in range(10))
    )
    assert sorted(r.status_code for r in replies).count(200) == 1
    assert {r.status_code for r in replies} <= {200, 409, 422}
    row = await order_row(checkout["order"]["id"])
    assert (row["status"], row["refunded_fen"]) == ("refunded", plan["price_fen"])
    no = checkout["payment"]["out_trade_no"]
    assert (
        sum(r["amount"]["refund"] for r in shop_wechat.refunds.values() if r["out_trade_no"] == no)
        == plan["price_fen"]
    )
