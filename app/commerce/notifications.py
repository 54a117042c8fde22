"""Payment notifications, and the one place a payment is applied.

The order of checks (each provider's notification follows it):

1. verify the signature (and, for WeChat, the timestamp window) via the provider;
   an unverifiable message changes nothing and gets the failure reply;
2. store the raw event under UNIQUE (provider, notification_id): a resend or a
   replay finds the stored outcome and is answered the same way;
3. check the order exists and the amount and currency equal the attempt's
   (app id / merchant id were checked by the provider against its config);
4. in ONE transaction: ``UPDATE orders SET status = 'paid' ... WHERE id = $1
   AND status = 'pending'``; only when that update took a row is the
   subscription granted. A payment for an order that is no longer pending is a
   duplicate (same attempt) or a late payment (flagged, refunded).

:meth:`Payments.apply_paid` is shared with reconciliation, which learns of
payments by querying the provider instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.responses import Response

from app.commerce.models import Order, PaymentAttempt, PaymentEvent, Refund
from app.commerce.refunds import Refunds
from app.commerce.status import AttemptStatus, OrderKind, OrderStatus, RefundKind, RefundState
from app.commerce.subscriptions import Subscriptions
from app.commerce.topups import credit_wallet
from app.notify import events as notify_events
from app.payments import (
    NotifyStatus,
    PaymentNotification,
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
    PaymentProviders,
)
from luser_common import utc_now
from luser_common.errors import AppError
from luser_db import Db, transaction

__all__ = ["Outcome", "Payments"]

logger = logging.getLogger("luser.commerce")

# Outcomes after which a resend is simply acknowledged. A "rejected" or "error"
# event is checked again when it comes back: the provider was told to resend, and
# the checks are repeatable (a genuine resend is refused the same way).
_SETTLED = frozenset({"applied", "duplicate", "flagged", "ignored"})

# A payment that lands on one of these attempts still counts (a late payment included).
_UNPAID_ATTEMPT = ", ".join(
    f"'{s}'" for s in (AttemptStatus.PENDING, AttemptStatus.CLOSED, AttemptStatus.FAILED)
)


@dataclass(frozen=True)
class Outcome:
    """What processing a payment event decided; ``acknowledged`` -> success reply."""

    outcome: str
    reason: str | None = None
    order_id: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.outcome in _SETTLED


class Payments:
    def __init__(
        self, providers: PaymentProviders, subscriptions: Subscriptions, refunds: Refunds
    ) -> None:
        self.providers = providers
        self.subscriptions = subscriptions
        self.refunds = refunds

    # -- the HTTP entry point --------------------------------------------------------

    async def handle_notification(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Verify, process and answer exactly as the provider requires."""
        provider = self.providers.get(provider_name)
        try:
            note = await provider.verify_notification(headers, body)
        except PaymentNotifyInvalid as exc:
            logger.warning(
                "%s notification refused: %s (%s)", provider_name, exc.message, exc.reason
            )
            return provider.failure_reply(exc)
        try:
            outcome = await self.process(note)
        except Exception as exc:
            # Whatever broke, the provider must hear "failure" so that it sends again;
            # the transaction rolled back, so the resend starts from a clean state.
            logger.exception("%s notification %s failed", provider_name, note.notification_id)
            return provider.failure_reply(exc if isinstance(exc, AppError) else None)
        if outcome.acknowledged:
            return provider.success_reply()
        return provider.failure_reply(
            PaymentNotifyMismatch(
                provider_name,
                outcome.reason or "rejected",
                "支付通知与订单不符",
            )
        )

    # -- processing ------------------------------------------------------------------

    async def process(self, note: PaymentNotification) -> Outcome:
        """Store ``note`` once, then act on it (idempotent: safe to repeat)."""
        event = await _store(
            note.provider,
            note.notification_id,
            "notify",
            note.event_type,
            note.out_trade_no,
            str(note.status),
            note.amount_fen,
            note.raw,
        )
        if event.outcome in _SETTLED:
            return Outcome(event.outcome, event.reason)
        try:
            outcome = await self._decide(event, note)
        except Exception as exc:
            await _finish(event.id, "error", type(exc).__name__)
            raise
        return outcome

    async def _decide(self, event: PaymentEvent, note: PaymentNotification) -> Outcome:
        attempt = (
            await PaymentAttempt.query()
            .where("provider = ? AND out_trade_no = ?", note.provider, note.out_trade_no)
            .first()
        )
        if attempt is None:
            return await _finish(event.id, "rejected", "unknown_order")
        if note.status is NotifyStatus.REFUNDED:
            done = await self.refunds.mark_done(note.out_refund_no)
            return await _finish(
                event.id, "applied" if done else "ignored", "refund", attempt=attempt
            )
        if note.status is not NotifyStatus.SUCCEEDED:
            return await _finish(event.id, "ignored", str(note.status), attempt=attempt)
        try:
            note.ensure_amount(attempt.amount_fen, "CNY")
        except PaymentNotifyMismatch as exc:
            logger.error("payment %s refused: %s", note.out_trade_no, exc.reason)
            return await _finish(event.id, "rejected", exc.reason, attempt=attempt)
        return await self.apply_paid(attempt, note.trade_no, note.paid_at, event.id)

    async def apply_paid(
        self,
        attempt: PaymentAttempt,
        trade_no: str | None,
        paid_at: datetime | None,
        event_id: int,
    ) -> Outcome:
        """Record that ``attempt`` was paid; grant at most once per order."""
        async with transaction():
            outcome = await self._apply_paid(attempt, trade_no, paid_at or utc_now())
            await _finish(event_id, outcome.outcome, outcome.reason, attempt=attempt)
        if outcome.outcome == "flagged":
            await self._refund_late(attempt)
        return outcome

    async def _apply_paid(
        self, attempt: PaymentAttempt, trade_no: str | None, paid_at: datetime
    ) -> Outcome:
        await Db.execute(
            f"UPDATE payment_attempts SET status = '{AttemptStatus.SUCCEEDED}',"
            " trade_no = coalesce(?, trade_no), paid_at = coalesce(paid_at, ?), updated_at = now()"
            f" WHERE id = ? AND status IN ({_UNPAID_ATTEMPT})",
            trade_no,
            paid_at,
            attempt.id,
        )
        moved = await Db.execute(
            f"UPDATE orders SET status = '{OrderStatus.PAID}', paid_at = ?, paid_attempt_id = ?,"
            f" updated_at = now() WHERE id = ? AND status = '{OrderStatus.PENDING}'",
            paid_at,
            attempt.id,
            attempt.order_id,
        )
        order = await Order.find_by_id(attempt.order_id)
        assert order is not None
        if moved == 1:
            # Same transaction as the PAID transition: both land, or neither does.
            if order.kind == OrderKind.TOPUP:
                await credit_wallet(order)
            else:
                await self.subscriptions.grant(order)
            await notify_events.payment_succeeded(order)  # same transaction as the payment
            return Outcome("applied", None, order.id)
        if order.paid_attempt_id == attempt.id:
            return Outcome("duplicate", order.status, order.id)
        # Paid after the order closed or expired, or paid twice over two channels.
        reason = f"late_payment:order_{order.status}"
        logger.error(
            "late payment %s on order %s (%s): refunding",
            attempt.out_trade_no,
            order.order_no,
            order.status,
        )
        await Db.execute(
            "UPDATE payment_attempts SET flagged = true, flag_reason = ?, updated_at = now()"
            " WHERE id = ?",
            reason,
            attempt.id,
        )
        await self.refunds.open_late_payment_refund(attempt, "订单已关闭, 自动退款")
        return Outcome("flagged", reason, order.id)

    async def _refund_late(self, attempt: PaymentAttempt) -> None:
        refund = (
            await Refund.query()
            .where(
                f"attempt_id = ? AND kind = '{RefundKind.LATE_PAYMENT}'"
                f" AND status = '{RefundState.PENDING}'",
                attempt.id,
            )
            .first()
        )
        if refund is None:
            return
        try:
            await self.refunds.execute(refund)
        except AppError as exc:  # retried by reconciliation
            logger.warning("late payment refund %s failed: %s", refund.out_refund_no, exc)

    async def record_query(
        self, attempt: PaymentAttempt, status: str, amount_fen: int, raw: dict[str, Any]
    ) -> PaymentEvent:
        """Reconciliation's counterpart of a notification: stored under ``query:<no>``."""
        return await _store(
            attempt.provider,
            f"query:{attempt.out_trade_no}",
            "query",
            "trade.query",
            attempt.out_trade_no,
            status,
            amount_fen,
            raw,
        )


async def _store(
    provider: str,
    notification_id: str,
    source: str,
    event_type: str,
    out_trade_no: str,
    status: str,
    amount_fen: int,
    raw: dict[str, Any],
) -> PaymentEvent:
    event = PaymentEvent(
        provider=provider,
        notification_id=notification_id,
        source=source,
        event_type=event_type[:64],
        out_trade_no=out_trade_no[:64],
        status=status,
        amount_fen=amount_fen,
        raw=raw,
    )
    if await event.upsert(("provider", "notification_id"), do_nothing=True):
        return event
    stored = (
        await PaymentEvent.query()
        .where("provider = ? AND notification_id = ?", provider, notification_id)
        .first()
    )
    assert stored is not None
    if stored.outcome not in _SETTLED:
        # About to be checked again: keep what is being checked.
        stored.status, stored.amount_fen, stored.raw = status, amount_fen, raw
        await stored.update()
    return stored


async def _finish(
    event_id: int, outcome: str, reason: str | None, *, attempt: PaymentAttempt | None = None
) -> Outcome:
    # The first decision stands: a concurrent copy that lost the race to the
    # order update must not overwrite "applied" with "duplicate".
    await Db.execute(
        "UPDATE payment_events SET outcome = ?, reason = ?, processed_at = now(),"
        " attempt_id = coalesce(?, attempt_id)"
        " WHERE id = ? AND (outcome IS NULL OR outcome IN ('rejected', 'error'))",
        outcome,
        reason,
        attempt.id if attempt else None,
        event_id,
    )
    return Outcome(outcome, reason, attempt.order_id if attempt else None)
