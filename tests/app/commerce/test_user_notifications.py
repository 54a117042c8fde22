"""Notifications to subscribers: the outbox is written in the transaction of the payment,
the refund or the expiry it reports, and drained with per-attempt bookkeeping."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.commerce import notifications as commerce_notifications
from app.notify import Notification, Outbox
from app.notify import jobs as notify_jobs
from app.notify.outbox import OutboxMessage
from app.sandbox.payments import WechatPayStub
from app.settings import AppConfig, NotificationsConfig
from luser_common import utc_now
from luser_db import Db

from .conftest import Buyer, MakePlan, Order, order_row, post_wechat


class Recorder:
    """A sender that records deliveries and fails the first ``failures`` attempts for
    the users it is told to."""

    def __init__(self, *, fail_users: set[int] | None = None, failures: int = 0) -> None:
        self.sent: list[Notification] = []
        self.fail_users = fail_users or set()
        self.failures = failures

    async def send(self, message: Notification) -> None:
        if message.user_id in self.fail_users and self.failures > 0:
            self.failures -= 1
            raise ConnectionError("短信网关不可用")
        self.sent.append(message)
        await asyncio.sleep(0)  # let a concurrent drainer run in between

    def for_user(self, user_id: int) -> list[Notification]:
        return [m for m in self.sent if m.user_id == user_id]


async def _pay(
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


async def _messages(user_id: int) -> list[OutboxMessage]:
    return await OutboxMessage.query().where("user_id = ?", user_id).order_by("id").all()


async def _attempts(outbox_id: int) -> list[tuple[int, str | None]]:
    rows = await Db.find(
        "select attempt_no, outcome from notification_attempts where outbox_id = ?"
        " order by attempt_no",
        outbox_id,
    )
    return [(r["attempt_no"], r["outcome"]) for r in rows]


async def test_payment_writes_one_notification_delivered_once(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    checkout = await _pay(shop, shop_wechat, buyer, plan, order_for)
    no = checkout["payment"]["out_trade_no"]
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204  # resend
    [message] = await _messages(buyer.id)
    assert message.kind == "payment_succeeded" and message.status == "pending"
    assert message.payload["order_no"] == checkout["order"]["order_no"]

    sender = Recorder()
    outbox = Outbox(sender, max_attempts=3, retry_seconds=60)
    await outbox.drain_once()
    [note] = sender.for_user(buyer.id)
    assert note.title == "支付成功" and plan["name"] in note.body and note.attempt == 1
    await outbox.drain_once(utc_now() + timedelta(days=1))
    assert len(sender.for_user(buyer.id)) == 1
    [sent] = await _messages(buyer.id)
    assert sent.status == "sent" and sent.attempts == 1 and sent.sent_at is not None
    assert await _attempts(sent.id) == [(1, "sent")]


async def test_no_notification_without_the_payment_and_no_payment_without_it(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(order: Any) -> bool:
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(commerce_notifications.notify_events, "payment_succeeded", broken)
    checkout = await order_for(buyer, plan, "wechat", "native")
    no = checkout["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    r = await post_wechat(shop, *shop_wechat.notification(no))
    assert r.status_code >= 400  # the provider is asked to resend
    assert (await order_row(checkout["order"]["id"]))["status"] == "pending"
    assert await _messages(buyer.id) == []

    monkeypatch.undo()
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    assert (await order_row(checkout["order"]["id"]))["status"] == "paid"
    assert [m.kind for m in await _messages(buyer.id)] == ["payment_succeeded"]


async def test_refund_is_notified(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(price_fen=2000)
    checkout = await _pay(shop, shop_wechat, buyer, plan, order_for)
    r = await shop.post(
        f"/api/admin/orders/{checkout['order']['id']}/refund",
        headers=shop_admin.headers,
        json={"reason": "用户申请"},
    )
    assert r.status_code == 200, r.text
    kinds = [(m.kind, m.payload.get("amount_fen")) for m in await _messages(buyer.id)]
    assert kinds == [("payment_succeeded", 2000), ("refund_succeeded", 2000)]
    sender = Recorder()
    await Outbox(sender).drain_once()
    assert [m.title for m in sender.for_user(buyer.id)] == ["支付成功", "退款已受理"]


async def test_failed_deliveries_are_retried_with_backoff_and_booked(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    await _pay(shop, shop_wechat, buyer, plan, order_for)
    sender = Recorder(fail_users={buyer.id}, failures=2)
    outbox = Outbox(sender, max_attempts=5, retry_seconds=60)
    now = utc_now()
    await outbox.drain_once(now)
    [message] = await _messages(buyer.id)
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.last_error and "短信网关不可用" in message.last_error
    await outbox.drain_once(utc_now() + timedelta(seconds=30))  # first retry after 60 s
    assert (await _messages(buyer.id))[0].attempts == 1
    await outbox.drain_once(now + timedelta(minutes=2))  # second attempt fails too
    await outbox.drain_once(now + timedelta(minutes=10))
    [message] = await _messages(buyer.id)
    assert (message.status, message.attempts) == ("sent", 3)
    assert await _attempts(message.id) == [(1, "error"), (2, "error"), (3, "sent")]
    assert len(sender.for_user(buyer.id)) == 1


async def test_delivery_gives_up_after_max_attempts(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    await _pay(shop, shop_wechat, buyer, plan, order_for)
    outbox = Outbox(Recorder(fail_users={buyer.id}, failures=99), max_attempts=2)
    later = utc_now()
    for _ in range(4):
        later += timedelta(hours=2)
        await outbox.drain_once(later)
    [message] = await _messages(buyer.id)
    assert (message.status, message.attempts) == ("failed", 2)
    assert await _attempts(message.id) == [(1, "error"), (2, "error")]


async def test_concurrent_drainers_attempt_each_message_once(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    make_plan: MakePlan,
    buyer: Buyer,
    order_for: Order,
) -> None:
    for _ in range(5):
        await _pay(shop, shop_wechat, buyer, await make_plan(), order_for)
    sender = Recorder()
    drainers = [Outbox(sender) for _ in range(4)]
    await asyncio.gather(*(d.drain_once() for d in drainers))
    mine = sender.for_user(buyer.id)
    assert len(mine) == 5 and len({m.id for m in mine}) == 5
    for message in await _messages(buyer.id):
        assert (message.status, message.attempts) == ("sent", 1)
        assert await _attempts(message.id) == [(1, "sent")]


async def test_subscription_expiry_is_notified_once(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    buyer: Buyer,
    make_buyer: Any,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    await _pay(shop, shop_wechat, buyer, plan, order_for)
    still = await make_buyer()
    await _pay(shop, shop_wechat, still, plan, order_for)
    # The buyer's access ended an hour ago; the other subscriber's has 30 days left.
    await Db.execute(
        "update subscription_periods set starts_at = now() - interval '31 days',"
        " ends_at = now() - interval '1 hour' where user_id = ?",
        buyer.id,
    )
    outbox = Outbox(Recorder())
    assert await outbox.note_expiries() >= 1
    assert await outbox.note_expiries() == 0  # noticed once, by any number of passes
    assert [m.kind for m in await _messages(buyer.id)] == [
        "payment_succeeded",
        "subscription_expired",
    ]
    assert [m.kind for m in await _messages(still.id)] == ["payment_succeeded"]

    # An expiry long past when first noticed is history, not news.
    await Db.execute(
        "update subscription_periods set starts_at = now() - interval '60 days',"
        " ends_at = now() - interval '30 days' where user_id = ?",
        still.id,
    )
    await outbox.note_expiries()
    assert [m.kind for m in await _messages(still.id)] == ["payment_succeeded"]


async def test_the_service_drains_the_outbox_with_the_app_sender(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_config: AppConfig,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    """The notify feature's job runs every ``notifications.drain_interval_seconds`` with
    the sender given to the outbox (``create_app(notification_sender=...)``)."""
    await _pay(shop, shop_wechat, buyer, plan, order_for)
    sender = Recorder()
    config = NotificationsConfig(drain_interval_seconds=0.01)
    async with notify_jobs.running(notify_jobs.build_outbox(config, sender), config):
        deadline = asyncio.get_running_loop().time() + 20
        while not sender.for_user(buyer.id):
            assert asyncio.get_running_loop().time() < deadline, "the job never delivered"
            await asyncio.sleep(0.01)
    assert [m.kind for m in sender.for_user(buyer.id)] == ["payment_succeeded"]
