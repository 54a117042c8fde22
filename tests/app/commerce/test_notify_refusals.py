"""Notifications that must be refused, with nothing changed: forged signature, tampered
fields, wrong amount, wrong app id / merchant, stale WeChat timestamp, unknown order.

Each case checks the provider's own failure reply with its exact status, the reason the
refusal was made for (a crash is a refusal too, so "any 4xx/5xx" proved nothing: an
amount mismatch that crashed with a 500 passed), that the order and its attempt are
still pending, that no subscription exists, and that the genuine notification still
works afterwards (the refusal left nothing behind that blocks it).

The reason is read where the service records it: the warning logged when verification
refuses a message, or the ``payment_events`` row when processing rejects it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.sandbox.payments import AlipayStub, KeyPair, WechatPayStub, replace_form_fields
from luser_db import Db

from .conftest import Buyer, Order, grants_for, order_row, post_alipay, post_wechat

AlipayCase = Callable[[AlipayStub, str, dict[str, KeyPair]], bytes]
UNKNOWN_ALIPAY_ORDER = "PNOTOURS000000001"
UNKNOWN_WECHAT_ORDER = "PNOTOURS000000002"

# case -> (where the refusal happens, its reason)
VERIFY, PROCESS = "verification", "processing"
ALIPAY_REASONS = {
    "forged_signature": (VERIFY, "signature"),
    "tampered_amount": (VERIFY, "signature"),
    "signed_wrong_amount": (PROCESS, "amount"),
    "wrong_app_id": (VERIFY, "app_id"),
    "wrong_seller": (VERIFY, "seller_id"),
    "unknown_order": (PROCESS, "unknown_order"),
    "missing_signature": (VERIFY, "signature"),
}
WECHAT_REASONS = {
    "forged_signature": (VERIFY, "signature"),
    "stale_timestamp": (VERIFY, "timestamp"),
    "future_timestamp": (VERIFY, "timestamp"),
    "unknown_serial": (VERIFY, "serial"),
    "wrong_apiv3_key": (VERIFY, "decrypt"),
    "signed_wrong_amount": (PROCESS, "amount"),
    "wrong_currency": (PROCESS, "currency"),
    "wrong_app_id": (VERIFY, "app_id"),
    "wrong_mch_id": (VERIFY, "mch_id"),
    "unknown_order": (PROCESS, "unknown_order"),
}


async def _refusal(caplog: pytest.LogCaptureFixture, *trade_nos: str) -> tuple[str, str]:
    """Where the last notification was refused, and why."""
    refused = [
        r
        for r in caplog.records
        if r.name == "luser.commerce" and str(r.msg).endswith("notification refused: %s (%s)")
    ]
    if refused:
        args = refused[-1].args
        assert isinstance(args, tuple)
        return VERIFY, str(args[2])
    rec = await Db.find_first(
        "SELECT outcome, reason FROM payment_events WHERE out_trade_no = ANY(?)"
        " ORDER BY id DESC LIMIT 1",
        list(trade_nos),
    )
    assert rec is not None, "refused without a log line or a stored event"
    assert rec["outcome"] == "rejected", dict(rec)  # "error" would be a crash
    return PROCESS, str(rec["reason"])


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
    "unknown_order": lambda s, no, k: s.notification(no, out_trade_no=UNKNOWN_ALIPAY_ORDER),
    "missing_signature": lambda s, no, k: replace_form_fields(s.notification(no), sign=None),
}


async def _assert_untouched(order_id: int, user_id: int) -> None:
    row = await order_row(order_id)
    assert row["status"] == "pending" and row["paid_at"] is None
    attempts = await Db.find("SELECT status FROM payment_attempts WHERE order_id = ?", order_id)
    assert [a["status"] for a in attempts] == ["pending"]
    assert await grants_for(user_id) == []


def test_every_case_has_its_expected_refusal() -> None:
    assert set(ALIPAY_CASES) == set(ALIPAY_REASONS)


@pytest.mark.parametrize("case", sorted(ALIPAY_CASES))
async def test_alipay_refusals(
    case: str,
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    shop_keys: dict[str, KeyPair],
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    no = checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    with caplog.at_level(logging.WARNING, logger="luser.commerce"):
        r = await post_alipay(shop, ALIPAY_CASES[case](shop_alipay, no, shop_keys))
    # Alipay hears "failure" (200) even when processing crashed: the reason tells.
    assert (r.status_code, r.text) == (200, "failure")
    assert await _refusal(caplog, no, UNKNOWN_ALIPAY_ORDER) == ALIPAY_REASONS[case]
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
            no, resource={**view, "out_trade_no": UNKNOWN_WECHAT_ORDER}
        ),
    }


WECHAT_CASES = sorted(WECHAT_REASONS)


@pytest.mark.parametrize("case", WECHAT_CASES)
async def test_wechat_refusals(
    case: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_keys: dict[str, KeyPair],
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    headers, body = _wechat_cases(shop_wechat, no, shop_keys)[case]
    with caplog.at_level(logging.WARNING, logger="luser.commerce"):
        r = await post_wechat(shop, headers, body)
    # Every refusal is a 400; a 500 here is a crash, not a refusal.
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "FAIL" and r.json()["message"]
    assert await _refusal(caplog, no, UNKNOWN_WECHAT_ORDER) == WECHAT_REASONS[case]
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
