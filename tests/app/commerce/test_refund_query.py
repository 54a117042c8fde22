"""Refund query: a refund WeChat accepted as PROCESSING is settled by asking WeChat
(the admin endpoint, the settlement pass, the periodic job), its effects applied
exactly once; a query for a refund nobody knows is a clear 404 that writes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from app.commerce import Commerce
from app.commerce.refunds import settle_refunds_forever
from app.sandbox.payments import WechatPayStub
from luser_db import Db

from .conftest import Buyer, MakePlan, Order, grants_for, order_row, post_wechat


async def _paid(
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


async def _processing_refund(
    shop: httpx.AsyncClient, stub: WechatPayStub, admin: Buyer, order_id: int, amount: int
) -> dict[str, Any]:
    stub.refund_status = "PROCESSING"
    try:
        r = await shop.post(
            f"/api/admin/orders/{order_id}/refund",
            headers=admin.headers,
            json={"amount_fen": amount},
        )
    finally:
        stub.refund_status = "SUCCESS"
    assert r.status_code == 200, r.text
    refund: dict[str, Any] = r.json()["data"]
    assert refund["status"] == "processing"
    return refund


async def _refund_row(refund_id: int) -> dict[str, Any]:
    rec = await Db.find_first("SELECT * FROM refunds WHERE id = ?", refund_id)
    assert rec is not None
    return dict(rec)


async def _state(order_id: int, user_id: int) -> tuple[Any, ...]:
    """Everything a refund's effects touch: the order's money and status, the grants."""
    row = await order_row(order_id)
    grants = [(g["duration_seconds"], g["ends_at"], g["status"]) for g in await grants_for(user_id)]
    return row["refunded_fen"], row["status"], grants


async def test_processing_then_success_on_query_settles_once(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    commerce: Commerce,
) -> None:
    plan = await make_plan(level=2, days=30, price_fen=3000)
    order_id = (await _paid(shop, shop_wechat, buyer, plan, order_for))["order"]["id"]
    refund = await _processing_refund(shop, shop_wechat, shop_admin, order_id, 1000)
    # Accepted: the effects are applied now (the merchant committed to the refund).
    after_accept = await _state(order_id, buyer.id)
    assert after_accept[0] == 1000 and after_accept[1] == "paid"
    assert after_accept[2][0][0] == 20 * 86400  # a third of 30 days taken back

    # WeChat still processing: querying changes nothing.
    r = await shop.post(f"/api/admin/refunds/{refund['id']}/query", headers=shop_admin.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "processing"

    shop_wechat.finish_refund(refund["out_refund_no"])
    r = await shop.post(f"/api/admin/refunds/{refund['id']}/query", headers=shop_admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "succeeded"
    assert await _state(order_id, buyer.id) == after_accept  # not applied a second time
    # Again, and by the settlement pass: nothing left to settle, nothing applied again.
    r = await shop.post(f"/api/admin/refunds/{refund['id']}/query", headers=shop_admin.headers)
    assert r.json()["data"]["status"] == "succeeded"
    await commerce.refunds.settle_processing()
    assert await _state(order_id, buyer.id) == after_accept
    assert (await _refund_row(refund["id"]))["status"] == "succeeded"


async def test_the_periodic_job_settles_processing_refunds(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
    commerce: Commerce,
) -> None:
    plan = await make_plan(level=1, days=10, price_fen=2000)
    order_id = (await _paid(shop, shop_wechat, buyer, plan, order_for))["order"]["id"]
    refund = await _processing_refund(shop, shop_wechat, shop_admin, order_id, 2000)
    after_accept = await _state(order_id, buyer.id)
    assert after_accept[:2] == (2000, "refunded")
    shop_wechat.finish_refund(refund["out_refund_no"])

    job = asyncio.create_task(settle_refunds_forever(commerce.refunds, 0))
    try:
        deadline = time.monotonic() + 20
        while (await _refund_row(refund["id"]))["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not settle the refund"
            assert not job.done()
            await asyncio.sleep(0.05)  # float-ok: polling, with a deadline
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert await _state(order_id, buyer.id) == after_accept


async def test_abnormal_after_acceptance_is_flagged_for_a_human(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    order_id = (await _paid(shop, shop_wechat, buyer, plan, order_for))["order"]["id"]
    refund = await _processing_refund(shop, shop_wechat, shop_admin, order_id, 100)
    before = await _state(order_id, buyer.id)
    shop_wechat.finish_refund(refund["out_refund_no"], "ABNORMAL")
    r = await shop.post(f"/api/admin/refunds/{refund['id']}/query", headers=shop_admin.headers)
    data = r.json()["data"]
    assert data["status"] == "processing" and "人工" in data["error"]
    assert await _state(order_id, buyer.id) == before


async def test_query_for_an_unknown_refund_is_404_and_writes_nothing(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    r = await shop.post("/api/admin/refunds/987654321/query", headers=shop_admin.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "REFUND_NOT_FOUND"

    # A refund row the provider has never heard of (its number never reached WeChat).
    order_id = (await _paid(shop, shop_wechat, buyer, plan, order_for))["order"]["id"]
    order = await order_row(order_id)
    refund_id = await Db.query_int(
        "INSERT INTO refunds (order_id, attempt_id, kind, out_refund_no, amount_fen)"
        " VALUES (?, ?, 'admin', 'RNEVERSENT0001', 100) RETURNING id",
        order_id,
        order["paid_attempt_id"],
    )
    assert refund_id is not None
    before = (await _refund_row(refund_id), await _state(order_id, buyer.id))
    r = await shop.post(f"/api/admin/refunds/{refund_id}/query", headers=shop_admin.headers)
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["code"] == "PAYMENT_REFUND_UNKNOWN" and "RNEVERSENT0001" in error["message"]
    assert (await _refund_row(refund_id), await _state(order_id, buyer.id)) == before
    await Db.execute("DELETE FROM refunds WHERE id = ?", refund_id)


async def test_only_admins_query_refunds(shop: httpx.AsyncClient, buyer: Buyer) -> None:
    r = await shop.post("/api/admin/refunds/1/query", headers=buyer.headers)
    assert r.status_code == 403


async def test_cli_settle_refunds_in_its_own_process(
    shop_db: str,
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    """``luser payments settle-refunds``, configured by environment only."""
    order_id = (await _paid(shop, shop_wechat, buyer, plan, order_for))["order"]["id"]
    refund = await _processing_refund(shop, shop_wechat, shop_admin, order_id, 100)
    before = await _state(order_id, buyer.id)
    shop_wechat.finish_refund(refund["out_refund_no"])
    config = shop_wechat.config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update({"LUSER_ENV": "test", "LUSER__DATABASE__URL": shop_db})
    for name, value in config.model_dump().items():
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"LUSER__PAYMENT__WECHAT__{name.upper()}"] = (
            str(plain).lower() if isinstance(plain, bool) else str(plain)
        )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from app.cli import main; main()", "payments", "settle-refunds"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "退款查询完成" in result.stdout
    assert (await _refund_row(refund["id"]))["status"] == "succeeded"
    assert await _state(order_id, buyer.id) == before
