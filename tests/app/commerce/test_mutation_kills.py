"""Tests written to kill mutants of app/commerce/notifications.py that survived the
mutation run (see docs/mutation.md): what a paid notification must record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from app.sandbox.payments import AlipayStub
from luser_db import Db

from .conftest import Buyer, Order, order_row, post_alipay


async def test_a_paid_notification_records_trade_no_paid_time_and_outcomes(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "wap")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    trade = shop_alipay.mark_paid(no)
    trade["send_pay_date"] = "2026-01-02 03:04:05"  # Beijing time: the provider's, not ours
    assert (await post_alipay(shop, shop_alipay.notification(no))).text == "success"

    paid_at = datetime(2026, 1, 1, 19, 4, 5, tzinfo=UTC)
    attempt = await Db.find_first(
        "SELECT trade_no, paid_at FROM payment_attempts WHERE out_trade_no = ?", no
    )
    assert attempt is not None
    assert (attempt["trade_no"], attempt["paid_at"]) == (trade["trade_no"], paid_at)
    assert (await order_row(order_id))["paid_at"] == paid_at

    # TRADE_FINISHED after TRADE_SUCCESS: a second event for the same attempt, a duplicate
    # whose reason (the order's status) is recorded with it.
    shop_alipay.mark_paid(no, "TRADE_FINISHED")
    assert (await post_alipay(shop, shop_alipay.notification(no))).text == "success"
    events = await Db.find(
        "SELECT outcome, reason FROM payment_events WHERE out_trade_no = ? ORDER BY id", no
    )
    assert [(e["outcome"], e["reason"]) for e in events] == [
        ("applied", None),
        ("duplicate", "paid"),
    ]
