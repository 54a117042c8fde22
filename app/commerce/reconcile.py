"""Reconciliation: what the notifications did not tell us, the provider's query does.

One pass (:meth:`Reconciler.run_once`):

1. every attempt still pending after ``reconcile_after_minutes`` (or whose order
   has expired or stopped being payable) is queried at its provider; a paid
   trade is applied exactly like a notification (same checks, same single
   transaction), a closed one is recorded;
2. an unpaid attempt whose order expired or is no longer pending is closed at
   the provider first, so that no payment can land on it afterwards;
3. pending orders past their expiry with no open attempt become ``expired``;
4. refunds whose outcome is unknown are retried with the same refund number.

Runs in the service (a background task, see :func:`reconcile_forever`) and as
``luser payments reconcile``. Every step is idempotent, so two runners at
once are wasteful but harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.commerce.models import Order, PaymentAttempt
from app.commerce.notifications import Payments
from app.commerce.orders import Orders
from app.commerce.refunds import Refunds
from app.commerce.status import AttemptStatus, OrderStatus
from app.payments import PaymentProviders, TradeState, TradeStatus
from app.settings import PaymentConfig
from luser_common import utc_now
from luser_common.errors import AppError
from luser_common.tasks import every
from luser_db import Db

__all__ = ["ReconcileReport", "Reconciler", "reconcile_forever"]

logger = logging.getLogger("luser.commerce")

BATCH = 200


@dataclass
class ReconcileReport:
    checked: int = 0
    paid: int = 0
    flagged: int = 0
    closed: int = 0
    expired: int = 0
    refunds_retried: int = 0
    errors: int = 0


class Reconciler:
    def __init__(
        self,
        providers: PaymentProviders,
        config: PaymentConfig,
        orders: Orders,
        payments: Payments,
        refunds: Refunds,
    ) -> None:
        self.providers = providers
        self.config = config
        self.orders = orders
        self.payments = payments
        self.refunds = refunds

    async def run_once(self, now: datetime | None = None) -> ReconcileReport:
        now = now or utc_now()
        report = ReconcileReport()
        for attempt in await self._due(now):
            report.checked += 1
            try:
                await self._check(attempt, now, report)
            except AppError as exc:
                report.errors += 1
                logger.warning("reconcile %s failed: %s", attempt.out_trade_no, exc.message)
        report.expired = await self._expire(now)
        report.refunds_retried = await self.refunds.retry_pending()
        return report

    async def _due(self, now: datetime) -> list[PaymentAttempt]:
        cutoff = now - timedelta(minutes=self.config.reconcile_after_minutes)
        return await PaymentAttempt.find(
            "SELECT a.* FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
            f" WHERE a.status = '{AttemptStatus.PENDING}'"
            f" AND (a.created_at < ? OR o.expires_at <= ? OR o.status <> '{OrderStatus.PENDING}')"
            " ORDER BY a.id LIMIT ?",
            cutoff,
            now,
            BATCH,
        )

    async def _check(self, attempt: PaymentAttempt, now: datetime, report: ReconcileReport) -> None:
        if attempt.provider not in self.providers:
            return  # channel disabled since: nothing to ask
        state = await self.providers.get(attempt.provider).query(attempt.out_trade_no)
        await Db.execute("UPDATE payment_attempts SET checked_at = now() WHERE id = ?", attempt.id)
        if state.status is TradeStatus.SUCCEEDED:
            await self._paid(attempt, state, report)
        elif state.status is TradeStatus.CLOSED:
            await _mark_closed(attempt)
            report.closed += 1
        elif state.status in (TradeStatus.PENDING, TradeStatus.NOT_FOUND):
            order = await Order.find_by_id(attempt.order_id)
            assert order is not None and order.expires_at is not None
            if order.status != OrderStatus.PENDING or order.expires_at <= now:
                await self.orders.close_attempt(attempt)
                report.closed += 1
        else:
            logger.error("attempt %s is %s at the provider", attempt.out_trade_no, state.status)

    async def _paid(
        self, attempt: PaymentAttempt, state: TradeState, report: ReconcileReport
    ) -> None:
        amount = state.amount_fen if state.amount_fen is not None else -1
        event = await self.payments.record_query(
            attempt, str(state.status), max(amount, 0), state.raw
        )
        if event.outcome in ("applied", "duplicate", "flagged", "ignored"):
            return
        if amount != attempt.amount_fen:
            logger.error(
                "attempt %s paid %s fen, expected %s: not applied",
                attempt.out_trade_no,
                amount,
                attempt.amount_fen,
            )
            await Db.execute(
                "UPDATE payment_attempts SET flagged = true, flag_reason = 'amount_mismatch'"
                " WHERE id = ?",
                attempt.id,
            )
            await Db.execute(
                "UPDATE payment_events SET outcome = 'rejected', reason = 'amount' WHERE id = ?",
                event.id,
            )
            report.flagged += 1
            return
        outcome = await self.payments.apply_paid(attempt, state.trade_no, state.paid_at, event.id)
        if outcome.outcome == "applied":
            report.paid += 1
        elif outcome.outcome == "flagged":
            report.flagged += 1

    async def _expire(self, now: datetime) -> int:
        ids = await Db.query_column(
            f"SELECT id FROM orders WHERE status = '{OrderStatus.PENDING}' AND expires_at <= ?"
            " ORDER BY id LIMIT ?",
            now,
            BATCH,
        )
        expired = 0
        for order_id in ids:
            expired += await self.orders.finish_unpaid(order_id, OrderStatus.EXPIRED)
        return expired


async def _mark_closed(attempt: PaymentAttempt) -> None:
    await Db.execute(
        f"UPDATE payment_attempts SET status = '{AttemptStatus.CLOSED}', closed_at = now(),"
        f" updated_at = now() WHERE id = ? AND status = '{AttemptStatus.PENDING}'",
        attempt.id,
    )


async def reconcile_forever(reconciler: Reconciler, interval_seconds: int) -> None:
    """The service's background job: one pass every ``interval_seconds`` (a failed pass
    is logged and the next one runs as usual: luser_common.tasks.every)."""

    async def one_pass() -> None:
        report = await reconciler.run_once()
        if report.paid or report.flagged or report.expired or report.errors:
            logger.info("payment reconciliation: %s", report)

    await every(interval_seconds, one_pass, name="payment-reconciliation")
