"""Notifications that must be refused, with nothing changed: forged signature, tampered
fields, wrong amount, wrong app id / merchant, stale WeChat timestamp, unknown order.

Each case checks the provider's own failure reply, that the order and its attempt are
still pending, that no subscription exists, and that the genuine notification still
works afterwards (the refusal left nothing behind that blocks it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.payments.testing import AlipayStub, KeyPair, WechatPayStub, replace_form_fields
from luser_db import Db

from .conftest import Buyer, Order, grants_for, order_row, post_alipay, post_wechat

AlipayCase = Callable[[AlipayStub, str, dict[str, KeyPair]], bytes]

ALIPAY_CASES: dict[str, AlipayCase] = {
    "forged_signature": lambda s, no, k: s.notification(no, keys=k["evil"]),
    "tampered_amount": lambda s, no, k: replace_form_fields(
        s.notification(no), total_amount="0.01"
    ),
    "signed_wrong_amount": lambda s, no, k: s.notification(
        no, total_amount="0.01", receipt_amount="0.01", buyer_pay_amount="0.01"
    ),
    "wrong_app_id": lambda s, no, k: s.notification(no, app_id="2021999999999999"),
    "wrong_seller": lambda s, no, k: s.notification(no, seller_id="2088000000000001"),
    "unknown_order": lambda s, no, k: s.notification(no, out_trade_no="PNOTOURS000000001"),
    "missing_signature": lambda s, no, k: replace_form_fields(s.notification(no), sign=None),
}


async def _assert_untouched(order_id: int, user_id: int) -> None:
    row = await order_row(order_id)
    assert row["status"] == "pending" and row["paid_at"] is None
    attempts = await Db.find("SELECT status FROM payment_attempts WHERE order_id = ?", order_id)
    assert [a["status"] for a in attempts] == ["pending"]
    assert await grants_for(user_id) == []


@pytest.mark.parametrize("case", sorted(ALIPAY_CASES))
async def test_alipay_refusals(
    case: str,
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    shop_keys: dict[str, KeyPair],
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    no = checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    r = await post_alipay(shop, ALIPAY_CASES[case](shop_alipay, no, shop_keys))
    assert r.status_code == 200 and r.text == "failure"
    await _assert_untouched(checkout["order"]["id"], buyer.id)

    r = await post_alipay(shop, shop_alipay.notification(no))
    assert r.text == "success"
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"


def _wechat_cases(stub: WechatPayStub, no: str, keys: dict[str, KeyPair]) -> dict[str, Any]:
    view = {**stub.trades[no]}
    return {
        "forged_signature": stub.notification(no, keys=keys["evil"]),
        "stale_timestamp": stub.notification(no, timestamp=int(time.time()) - 3600),
        "future_timestamp": stub.notification(no, timestamp=int(time.time()) + 3600),
        "unknown_serial": stub.notification(no, serial="PUB_KEY_ID_0000000000000000000000000000"),
        "wrong_apiv3_key": stub.notification(no, apiv3_key="f" * 32),
        "signed_wrong_amount": stub.notification(
            no, resource={**view, "amount": {**view["amount"], "total": 1}}
        ),
        "wrong_currency": stub.notification(
            no, resource={**view, "amount": {**view["amount"], "currency": "USD"}}
        ),
        "wrong_app_id": stub.notification(no, resource={**view, "appid": "wx0000000000000000"}),
        "wrong_mch_id": stub.notification(no, resource={**view, "mchid": "1900000000"}),
        "unknown_order": stub.notification(
            no, resource={**view, "out_trade_no": "PNOTOURS000000002"}
        ),
    }


WECHAT_CASES = sorted(
    [
        "forged_signature",
        "stale_timestamp",
        "future_timestamp",
        "unknown_serial",
        "wrong_apiv3_key",
        "signed_wrong_amount",
        "wrong_currency",
        "wrong_app_id",
        "wrong_mch_id",
        "unknown_order",
    ]
)


@pytest.mark.parametrize("case", WECHAT_CASES)
async def test_wechat_refusals(
    case: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_keys: dict[str, KeyPair],
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    headers, body = _wechat_cases(shop_wechat, no, shop_keys)[case]
    r = await post_wechat(shop, headers, body)
    assert 400 <= r.status_code < 600
    assert r.json()["code"] == "FAIL" and r.json()["message"]
    await _assert_untouched(checkout["order"]["id"], buyer.id)

    r = await post_wechat(shop, *shop_wechat.notification(no))
    assert r.status_code == 204
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"


async def test_refused_notification_is_refused_again_on_resend(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    view = {**shop_wechat.trades[no]}
    bad = shop_wechat.notification(no, resource={**view, "amount": {**view["amount"], "total": 1}})
    for _ in range(2):
        assert (await post_wechat(shop, *bad)).status_code == 400
    rec = await Db.find_first(
        "SELECT outcome, reason FROM payment_events WHERE out_trade_no = ?", no
    )
    assert rec is not None and (rec["outcome"], rec["reason"]) == ("rejected", "amount")
    await _assert_untouched(checkout["order"]["id"], buyer.id)


async def test_unknown_provider_is_404(shop: httpx.AsyncClient) -> None:
    r = await shop.post("/api/payments/notify/paypal", content=b"x")
    assert r.status_code == 404
