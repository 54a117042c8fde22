"""Wallet top-ups: an order of kind "topup" paid through Alipay / WeChat credits the
open API wallet exactly once, in the transaction that marks the order paid."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.commerce.topups import FEN_TO_NANO
from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_db import Db

from .conftest import (
    Buyer,
    grants_for,
    order_row,
    paid_transition_count,
    post_alipay,
    post_wechat,
)

COPIES = 50


async def _topup(
    shop: httpx.AsyncClient, buyer: Buyer, amount_fen: Any, provider: str = "wechat"
) -> httpx.Response:
    method = "native" if provider == "wechat" else "page"
    body = {"amount_fen": amount_fen, "provider": provider, "method": method}
    return await shop.post("/api/wallet/topups", headers=buyer.headers, json=body)


async def _wallet(user_id: int) -> tuple[int, list[dict[str, Any]]]:
    balance = await Db.query_int("SELECT balance FROM users WHERE id = ?", user_id)
    entries = await Db.find(
        "SELECT amount, kind, reference FROM wallet_ledger WHERE user_id = ? ORDER BY id", user_id
    )
    return balance or 0, [dict(e) for e in entries]


async def _orders_of(user_id: int) -> int:
    return await Db.query_int("SELECT count(*) FROM orders WHERE user_id = ?", user_id) or 0


@pytest.mark.parametrize("provider", ["wechat", "alipay"])
async def test_topup_from_order_to_wallet_credit(
    provider: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_alipay: AlipayStub,
    buyer: Buyer,
    paid_transitions: None,
) -> None:
    r = await _topup(shop, buyer, 5000, provider)
    assert r.status_code == 201, r.text
    order, payment = r.json()["data"]["order"], r.json()["data"]["payment"]
    assert order["kind"] == "topup" and order["plan_id"] is None and order["amount_fen"] == 5000
    no = payment["out_trade_no"]
    if provider == "wechat":
        shop_wechat.mark_paid(no)
        assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    else:
        shop_alipay.accept_pay_url(payment["pay_url"])
        shop_alipay.mark_paid(no)
        assert (await post_alipay(shop, shop_alipay.notification(no))).text == "success"
    assert (await order_row(order["id"]))["status"] == "paid"
    balance, entries = await _wallet(buyer.id)
    assert balance == 5000 * FEN_TO_NANO == 50 * 10**9  # 50 CNY in nano-units
    assert entries == [
        {"amount": balance, "kind": "topup", "reference": f"order:{order['order_no']}"}
    ]
    assert await grants_for(buyer.id) == []  # credit, not subscription time


async def test_50_concurrent_duplicate_notifications_credit_once(
    shop: httpx.AsyncClient, shop_wechat: WechatPayStub, buyer: Buyer, paid_transitions: None
) -> None:
    r = await _topup(shop, buyer, 1234)
    order, no = r.json()["data"]["order"], r.json()["data"]["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    headers, body = shop_wechat.notification(no)
    replies = await asyncio.gather(*(post_wechat(shop, headers, body) for _ in range(COPIES)))
    assert [r.status_code for r in replies] == [204] * COPIES
    assert await paid_transition_count(order["id"]) == 1
    balance, entries = await _wallet(buyer.id)
    assert balance == 1234 * FEN_TO_NANO and len(entries) == 1


async def test_a_fault_on_the_second_write_leaves_neither(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_db: str,
    buyer: Buyer,
    paid_transitions: None,
) -> None:
    """A real fault inside PostgreSQL: a trigger makes the wallet write (the second
    write, after the order's PAID transition) fail for this user only."""
    r = await _topup(shop, buyer, 700)
    order, no = r.json()["data"]["order"], r.json()["data"]["payment"]["out_trade_no"]
    await Db.execute(
        "CREATE OR REPLACE FUNCTION test_wallet_fault() RETURNS trigger AS $$ BEGIN"
        f" IF NEW.user_id = {int(buyer.id)} THEN RAISE EXCEPTION 'disk on fire'; END IF;"
        " RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    await Db.execute(
        "CREATE TRIGGER test_wallet_fault BEFORE INSERT ON wallet_ledger"
        " FOR EACH ROW EXECUTE FUNCTION test_wallet_fault()"
    )
    try:
        shop_wechat.mark_paid(no)
        headers, body = shop_wechat.notification(no)
        r = await post_wechat(shop, headers, body)
        assert r.status_code == 500 and r.json()["code"] == "FAIL"  # WeChat will resend
        row = await order_row(order["id"])
        assert row["status"] == "pending" and row["paid_at"] is None
        assert await paid_transition_count(order["id"]) == 0
        assert await _wallet(buyer.id) == (0, [])
    finally:
        await Db.execute("DROP TRIGGER IF EXISTS test_wallet_fault ON wallet_ledger")
        await Db.execute("DROP FUNCTION IF EXISTS test_wallet_fault()")
    # The resend after the fault is gone: paid and credited, once.
    assert (await post_wechat(shop, headers, body)).status_code == 204
    assert (await order_row(order["id"]))["status"] == "paid"
    assert await _wallet(buyer.id) == (
        700 * FEN_TO_NANO,
        [{"amount": 700 * FEN_TO_NANO, "kind": "topup", "reference": f"order:{order['order_no']}"}],
    )


@pytest.mark.parametrize("amount", [0, -1, 100_001, 10**12, 1.5, "100", True, None])
async def test_bad_topup_amounts_are_422_and_write_nothing(
    amount: Any, shop: httpx.AsyncClient, buyer: Buyer
) -> None:
    before = await _orders_of(buyer.id)
    r = await _topup(shop, buyer, amount)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["field"] == "amount_fen"
    assert await _orders_of(buyer.id) == before
    assert await _wallet(buyer.id) == (0, [])


async def test_the_configured_maximum_is_allowed(
    shop: httpx.AsyncClient, buyer: Buyer, commerce: Any
) -> None:
    limit = commerce.config.payment.topup_max_fen
    assert limit == 100_000  # the default (payment.topup_max_fen)
    r = await _topup(shop, buyer, limit)
    assert r.status_code == 201, r.text
    assert "100000" in (await _topup(shop, buyer, limit + 1)).json()["error"]["message"]


async def test_a_paid_topup_cannot_be_refunded(
    shop: httpx.AsyncClient, shop_wechat: WechatPayStub, shop_admin: Buyer, buyer: Buyer
) -> None:
    r = await _topup(shop, buyer, 300)
    order, no = r.json()["data"]["order"], r.json()["data"]["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    r = await shop.post(
        f"/api/admin/orders/{order['id']}/refund", headers=shop_admin.headers, json={}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "REFUND_NOT_ALLOWED"
    assert (await order_row(order["id"]))["refunded_fen"] == 0
