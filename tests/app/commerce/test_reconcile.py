"""Reconciliation: lost notifications, expiry, late payments, and the background job.

Passes are run with an explicit ``now`` in the future instead of waiting; a pass
also sweeps leftovers of other tests (shared database), so assertions look at the
orders each test made, not at the pass totals.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from app.commerce import Commerce, ReconcileReport
from app.commerce.reconcile import reconcile_forever
from app.payments.errors import provider_unavailable
from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_common import utc_now
from luser_db import Db

from .conftest import Buyer, Order, grants_for, level_of, order_row, post_alipay, post_wechat


def later(minutes: int) -> datetime:
    return utc_now() + timedelta(minutes=minutes)


async def test_recovers_a_lost_wechat_notification(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)  # paid, but the notification never arrives

    await commerce.reconciler.run_once()  # too young to be queried yet
    assert (await order_row(order_id))["status"] == "pending"

    report = await commerce.reconciler.run_once(now=later(6))
    assert report.paid >= 1
    assert (await order_row(order_id))["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1 and await level_of(buyer.id) == plan["level"]
    event = await Db.find_first(
        "SELECT source, outcome FROM payment_events WHERE out_trade_no = ?", no
    )
    assert event is not None and (event["source"], event["outcome"]) == ("query", "applied")

    # Another pass, then the notification finally arriving: nothing more is granted.
    await commerce.reconciler.run_once(now=later(7))
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    assert len(await grants_for(buyer.id)) == 1


async def test_recovers_a_lost_alipay_notification(
    shop_alipay: AlipayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    no = checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    shop_alipay.mark_paid(no)
    await commerce.reconciler.run_once(now=later(6))
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1


async def test_expired_orders_are_closed_at_the_provider_first(
    shop_wechat: WechatPayStub,
    shop_alipay: AlipayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    wx = await order_for(buyer, plan, "wechat", "native")
    ali = await order_for(buyer, plan, "alipay", "page")  # the buyer never opens the cashier
    await commerce.reconciler.run_once(now=later(31))
    for checkout in (wx, ali):
        row = await order_row(checkout["order"]["id"])
        assert row["status"] == "expired" and row["closed_at"] is not None
        status = await Db.query_str(
            "SELECT status FROM payment_attempts WHERE out_trade_no = ?",
            checkout["payment"]["out_trade_no"],
        )
        assert status == "closed"
    assert shop_wechat.trades[wx["payment"]["out_trade_no"]]["trade_state"] == "CLOSED"


async def test_an_order_stays_open_while_its_trade_cannot_be_closed(
    shop_wechat: WechatPayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.overrides[("POST", "close")] = (500, {"code": "SYSTEM_ERROR", "message": "忙"})
    try:
        report = await commerce.reconciler.run_once(now=later(31))
    finally:
        shop_wechat.overrides.clear()
    assert report.errors >= 1
    assert (await order_row(checkout["order"]["id"]))["status"] == "pending"
    # The buyer paid in the meantime: the payment is accepted, not refunded.
    shop_wechat.mark_paid(no)
    await commerce.reconciler.run_once(now=later(32))
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1


async def test_payment_on_a_closed_order_is_flagged_and_refunded(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    r = await shop.post(f"/api/orders/{order_id}/cancel", headers=buyer.headers)
    assert r.json()["data"]["status"] == "closed"
    shop_wechat.mark_paid(no)  # the money arrives anyway
    r = await post_wechat(shop, *shop_wechat.notification(no))
    assert r.status_code == 204  # acknowledged: we own the problem now

    assert (await order_row(order_id))["status"] == "closed"
    assert await grants_for(buyer.id) == []
    attempt = await Db.find_first(
        "SELECT status, flagged, flag_reason FROM payment_attempts WHERE out_trade_no = ?", no
    )
    assert attempt is not None and attempt["flagged"] is True
    assert attempt["status"] == "refunded" and attempt["flag_reason"] == "late_payment:order_closed"
    refund = await Db.find_first("SELECT * FROM refunds WHERE order_id = ?", order_id)
    assert refund is not None and refund["kind"] == "late_payment"
    assert refund["status"] == "succeeded" and refund["amount_fen"] == plan["price_fen"]
    assert [r["out_trade_no"] for r in shop_wechat.refunds.values()].count(no) == 1
    r = await shop.get(
        f"/api/admin/orders?flagged=true&user_id={buyer.id}", headers=shop_admin.headers
    )
    assert [o["id"] for o in r.json()["data"]["items"]] == [order_id]
    # Resent: acknowledged, no second refund.
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    assert await Db.query_int("SELECT count(*) FROM refunds WHERE order_id = ?", order_id) == 1


async def test_second_channel_paid_too_is_refunded(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_alipay: AlipayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    order_id, ali_no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    r = await shop.post(
        f"/api/orders/{order_id}/pay",
        headers=buyer.headers,
        json={"provider": "wechat", "method": "native"},
    )
    wx_no = r.json()["data"]["payment"]["out_trade_no"]
    shop_wechat.mark_paid(wx_no)
    shop_alipay.mark_paid(ali_no)  # paid in both apps before the first notification
    assert (await post_wechat(shop, *shop_wechat.notification(wx_no))).status_code == 204
    assert (await post_alipay(shop, shop_alipay.notification(ali_no))).text == "success"
    row = await order_row(order_id)
    assert row["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1
    flagged = await Db.find_first(
        "SELECT out_trade_no, status FROM payment_attempts WHERE flagged AND order_id = ?", order_id
    )
    assert flagged is not None and dict(flagged) == {"out_trade_no": ali_no, "status": "refunded"}
    assert shop_alipay.trades[ali_no]["refunds"]


async def test_late_refund_that_failed_is_retried_by_reconciliation(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkout = await order_for(buyer, plan, "wechat", "native")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    await shop.post(f"/api/orders/{order_id}/cancel", headers=buyer.headers)
    shop_wechat.mark_paid(no)

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise provider_unavailable("wechat", "ConnectionError")

    monkeypatch.setattr(commerce.providers.get("wechat"), "refund", unreachable)
    r = await post_wechat(shop, *shop_wechat.notification(no))
    assert r.status_code == 204
    status = await Db.query_str("SELECT status FROM refunds WHERE order_id = ?", order_id)
    assert status == "pending"  # outcome unknown: kept for a retry with the same number

    monkeypatch.undo()
    report = await commerce.reconciler.run_once()
    assert report.refunds_retried >= 1
    assert await Db.query_str("SELECT status FROM refunds WHERE order_id = ?", order_id) == (
        "succeeded"
    )
    assert (
        await Db.query_str("SELECT status FROM payment_attempts WHERE out_trade_no = ?", no)
        == "refunded"
    )


async def test_background_job_runs_passes_until_cancelled() -> None:
    passes: list[int] = []
    done = asyncio.Event()

    class Counting:
        async def run_once(self) -> ReconcileReport:
            passes.append(1)
            if len(passes) == 3:
                done.set()
            if len(passes) == 2:
                raise RuntimeError("one bad pass must not stop the job")
            return ReconcileReport()

    task = asyncio.create_task(reconcile_forever(Counting(), 0))  # type: ignore[arg-type]
    await done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and len(passes) >= 3


async def test_admin_can_run_a_pass(
    shop: httpx.AsyncClient, shop_admin: Buyer, buyer: Buyer
) -> None:
    r = await shop.post("/api/admin/payments/reconcile", headers=shop_admin.headers)
    assert r.status_code == 200 and set(r.json()["data"]) >= {"checked", "paid", "expired"}
    r = await shop.post("/api/admin/payments/reconcile", headers=buyer.headers)
    assert r.status_code == 403


def test_cli_reconcile_without_enabled_channels(shop_db: str, monkeypatch: Any) -> None:
    from app.cli import main

    monkeypatch.setenv("LUSER__DATABASE__URL", shop_db)
    monkeypatch.setenv("LUSER_ENV", "test")
    result = CliRunner().invoke(main, ["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "没有启用的支付渠道" in result.output


async def test_cli_reconcile_recovers_a_payment(
    shop_db: str,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    """``luser payments reconcile`` in its own process, configured by environment only."""
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    await Db.execute(
        "UPDATE payment_attempts SET created_at = now() - interval '10 minutes'"
        " WHERE out_trade_no = ?",
        no,
    )
    config = shop_wechat.config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update(
        {
            "LUSER_ENV": "test",
            "LUSER__DATABASE__URL": shop_db,
            "LUSER__PAYMENT__WECHAT__ENABLED": "true",
            **{
                f"LUSER__PAYMENT__WECHAT__{name.upper()}": _plain(getattr(config, name))
                for name in (
                    "mch_id",
                    "app_id",
                    "mch_private_key",
                    "mch_cert_serial_no",
                    "apiv3_key",
                    "platform_public_key",
                    "platform_public_key_id",
                    "base_url",
                    "notify_url",
                )
            },
        }
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from app.cli import main; main()", "payments", "reconcile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "对账完成" in result.stdout
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"
    assert len(await grants_for(buyer.id)) == 1


def _plain(value: Any) -> str:
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


async def test_payment_found_on_an_expired_order_is_flagged_and_refunded(
    shop_alipay: AlipayStub,
    commerce: Commerce,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await order_for(buyer, plan, "alipay", "page")
    order_id, no = checkout["order"]["id"], checkout["payment"]["out_trade_no"]
    shop_alipay.accept_pay_url(checkout["payment"]["pay_url"])
    await commerce.reconciler.run_once(now=later(31))
    assert (await order_row(order_id))["status"] == "expired"
    assert shop_alipay.trades[no]["trade_status"] == "TRADE_CLOSED"
    # Against all odds the trade is paid after all, and only a query tells us.
    await Db.execute("UPDATE payment_attempts SET status = 'pending' WHERE out_trade_no = ?", no)
    shop_alipay.mark_paid(no)
    report = await commerce.reconciler.run_once(now=later(32))
    assert report.flagged >= 1
    assert (await order_row(order_id))["status"] == "expired"
    assert await grants_for(buyer.id) == []
    attempt = await Db.find_first(
        "SELECT status, flag_reason FROM payment_attempts WHERE out_trade_no = ?", no
    )
    assert attempt is not None
    assert dict(attempt) == {"status": "refunded", "flag_reason": "late_payment:order_expired"}
    assert shop_alipay.trades[no]["refunds"]
