"""Exactly once: the same notification 50 times at once, and a crash between the order
update and the grant."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.commerce import Commerce
from app.commerce.subscriptions import Subscriptions
from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_db import Db

from .conftest import (
    Buyer,
    Order,
    grants_for,
    level_of,
    order_row,
    paid_transition_count,
    post_alipay,
    post_wechat,
)

COPIES = 50


async def test_same_wechat_notification_50_times_concurrently(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    paid_transitions: None,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    headers, body = shop_wechat.notification(no)
    replies = await asyncio.gather(*(post_wechat(shop, headers, body) for _ in range(COPIES)))
    assert [r.status_code for r in replies] == [204] * COPIES
    await _assert_granted_once(checkout["order"]["id"], buyer.id, no)


async def test_same_alipay_notification_50_times_concurrently(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    paid_transitions: None,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "wap")
    no = checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    body = shop_alipay.notification(no)
    replies = await asyncio.gather(*(post_alipay(shop, body) for _ in range(COPIES)))
    assert [r.text for r in replies] == ["success"] * COPIES
    await _assert_granted_once(checkout["order"]["id"], buyer.id, no)


async def test_success_and_finished_racing_grant_once(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    paid_transitions: None,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    no = checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    success = shop_alipay.notification(no)
    shop_alipay.mark_paid(no, "TRADE_FINISHED")
    finished = shop_alipay.notification(no)
    bodies = [success, finished] * (COPIES // 2)
    replies = await asyncio.gather(*(post_alipay(shop, b) for b in bodies))
    assert {r.text for r in replies} == {"success"}
    assert len(await grants_for(buyer.id)) == 1
    assert await paid_transition_count(checkout["order"]["id"]) == 1
    events = await Db.find(
        "SELECT outcome FROM payment_events WHERE out_trade_no = ? ORDER BY outcome", no
    )
    assert sorted(e["outcome"] for e in events) == ["applied", "duplicate"]


async def _assert_granted_once(order_id: int, user_id: int, no: str) -> None:
    assert (await order_row(order_id))["status"] == "paid"
    assert await paid_transition_count(order_id) == 1
    grants = await grants_for(user_id)
    assert len(grants) == 1 and grants[0]["order_id"] == order_id
    events = await Db.find("SELECT outcome FROM payment_events WHERE out_trade_no = ?", no)
    assert [e["outcome"] for e in events] == ["applied"]
    periods = await Db.query_int(
        "SELECT count(*) FROM subscription_periods WHERE user_id = ?", user_id
    )
    assert periods == 1


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("provider", ["wechat", "alipay"])
async def test_crash_between_order_update_and_grant_leaves_neither(
    provider: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_alipay: AlipayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    monkeypatch: pytest.MonkeyPatch,
    paid_transitions: None,
) -> None:
    checkout = await order_for(buyer, plan, provider)
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    reached: list[str] = []

    async def crash(self: Subscriptions, order: Any, now: Any = None) -> Any:
        # The conditional UPDATE has run inside the transaction: prove it, then die.
        row = await Db.find_first("SELECT status FROM orders WHERE id = ?", order.id)
        assert row is not None
        reached.append(row["status"])
        raise Crash("power cut")

    monkeypatch.setattr(Subscriptions, "grant", crash)
    if provider == "wechat":
        shop_wechat.mark_paid(no)
        headers, body = shop_wechat.notification(no)
        r = await post_wechat(shop, headers, body)
        assert r.status_code == 500 and r.json()["code"] == "FAIL"
    else:
        shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
        shop_alipay.mark_paid(no)
        body = shop_alipay.notification(no)
        r = await post_alipay(shop, body)
        assert r.text == "failure"
    assert reached == ["paid"]

    row = await order_row(order_id)
    assert row["status"] == "pending" and row["paid_at"] is None
    assert await grants_for(buyer.id) == []
    assert await paid_transition_count(order_id) == 0
    status = await Db.query_str("SELECT status FROM payment_attempts WHERE out_trade_no = ?", no)
    assert status == "pending"
    assert (
        await Db.query_str("SELECT outcome FROM payment_events WHERE out_trade_no = ?", no)
        == "error"
    )

    # The provider resends; this time the process survives: paid and granted, once.
    monkeypatch.undo()
    if provider == "wechat":
        assert (await post_wechat(shop, headers, body)).status_code == 204
    else:
        assert (await post_alipay(shop, body)).text == "success"
    assert (await order_row(order_id))["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1
    assert await paid_transition_count(order_id) == 1
    assert await level_of(buyer.id) == plan["level"]
