"""Refunds: by an admin (shortens the subscription), or automatic for a payment
that landed on an order that could no longer take it (a "late payment").

A refund row with its own ``out_refund_no`` is committed before the provider is
called, so a retry (the same number) is idempotent at the provider. Accepted
refunds (``succeeded`` or ``processing``) are applied to the order and the
subscription exactly once: the row's ``pending -> accepted`` move is a
conditional update, and only the caller that made it applies the effects.
"""

from __future__ import annotations

import logging

from app.commerce._ids import new_number
from app.commerce.errors import OrderNotFound, RefundNotAllowed, RefundNotFound
from app.commerce.models import Order, PaymentAttempt, Refund
from app.commerce.status import AttemptStatus, OrderKind, OrderStatus, RefundKind, RefundState
from app.commerce.subscriptions import Subscriptions
from app.notify import events as notify_events
from app.payments import PaymentProviders, RefundResult, RefundStatus
from luser_common.errors import AppError, ExternalServiceError, ValidationError
from luser_common.tasks import every
from luser_db import Db, transaction

__all__ = ["Refunds", "settle_refunds_forever"]

logger = logging.getLogger("luser.commerce")

_ACCEPTED = {
    RefundStatus.SUCCEEDED: RefundState.SUCCEEDED,
    RefundStatus.PROCESSING: RefundState.PROCESSING,
}
_ABNORMAL = "渠道报告退款异常 (已受理后失败), 请人工处理"


class Refunds:
    def __init__(self, providers: PaymentProviders, subscriptions: Subscriptions) -> None:
        self.providers = providers
        self.subscriptions = subscriptions

    async def for_order(self, order_id: int) -> list[Refund]:
        return await Refund.query().where("order_id = ?", order_id).order_by("id").all()

    async def refund_order(
        self, order_id: int, amount_fen: int | None, reason: str, admin_id: int | None
    ) -> Refund:
        """Refund (part of) a paid order; the rest of the order stays paid."""
        refund = await self._open_admin_refund(order_id, amount_fen, reason, admin_id)
        return await self.execute(refund)

    async def _open_admin_refund(
        self, order_id: int, amount_fen: int | None, reason: str, admin_id: int | None
    ) -> Refund:
        async with transaction():
            order = await Order.query().where("id = ?", order_id).for_update().first()
            if order is None:
                raise OrderNotFound()
            if order.status != OrderStatus.PAID or order.paid_attempt_id is None:
                raise RefundNotAllowed(details={"status": order.status})
            if order.kind == OrderKind.TOPUP:
                # The credit may already be spent on API calls: not taken back here.
                raise RefundNotAllowed("钱包充值订单不能退款", details={"kind": order.kind})
            in_flight = (
                await Db.query_int(
                    "SELECT coalesce(sum(amount_fen), 0) FROM refunds"
                    f" WHERE order_id = ? AND kind = '{RefundKind.ADMIN}'"
                    f" AND status = '{RefundState.PENDING}'",
                    order.id,
                )
                or 0
            )
            left = order.amount_fen - order.refunded_fen - in_flight
            amount = left if amount_fen is None else amount_fen
            if not 1 <= amount <= left:
                raise ValidationError(f"退款金额必须在 1 到 {left} 分之间", field="amount_fen")
            refund = Refund(
                order_id=order.id,
                attempt_id=order.paid_attempt_id,
                kind=RefundKind.ADMIN,
                out_refund_no=new_number("R"),
                amount_fen=amount,
                reason=reason,
                created_by=admin_id,
            )
            await refund.save()
            return refund

    async def open_late_payment_refund(self, attempt: PaymentAttempt, reason: str) -> None:
        """Inside the caller's transaction: one automatic refund per late payment."""
        await Db.execute(
            "INSERT INTO refunds (order_id, attempt_id, kind, out_refund_no, amount_fen, reason)"
            f" VALUES (?, ?, '{RefundKind.LATE_PAYMENT}', ?, ?, ?) ON CONFLICT DO NOTHING",
            attempt.order_id,
            attempt.id,
            new_number("R"),
            attempt.amount_fen,
            reason,
        )

    async def execute(self, refund: Refund) -> Refund:
        """Ask the provider to refund; record and apply what it answered."""
        attempt = await PaymentAttempt.find_by_id(refund.attempt_id)
        assert attempt is not None
        provider = self.providers.get(attempt.provider)
        try:
            result = await provider.refund(
                attempt.out_trade_no,
                refund.out_refund_no,
                refund.amount_fen,
                attempt.amount_fen,
                refund.reason[:80],
            )
        except ExternalServiceError as exc:
            await _set(refund, status=RefundState.FAILED, error=exc.message[:500])
            raise
        except AppError as exc:
            # Outcome unknown: stays pending; the same out_refund_no is retried later.
            await _set(refund, error=exc.message[:500])
            raise
        await self._record(refund, result)
        found = await Refund.find_by_id(refund.id)
        assert found is not None
        return found

    async def _record(self, refund: Refund, result: RefundResult) -> None:
        status = _ACCEPTED.get(result.status)
        if status is None:
            await _set(refund, status=RefundState.FAILED, error="渠道拒绝退款")
            return
        async with transaction():
            moved = await Db.execute(
                "UPDATE refunds SET status = ?, refund_id = ?, error = NULL, updated_at = now()"
                f" WHERE id = ? AND status = '{RefundState.PENDING}'",
                status,
                result.refund_id,
                refund.id,
            )
            if moved == 1:
                await self._apply(refund)

    async def _apply(self, refund: Refund) -> None:
        if refund.kind == RefundKind.LATE_PAYMENT:
            await Db.execute(
                f"UPDATE payment_attempts SET status = '{AttemptStatus.REFUNDED}',"
                " updated_at = now() WHERE id = ?",
                refund.attempt_id,
            )
            return
        order = await Order.query().where("id = ?", refund.order_id).for_update().first()
        assert order is not None
        full = order.refunded_fen + refund.amount_fen >= order.amount_fen
        await self.subscriptions.shorten_for_refund(order, refund.amount_fen, full=full)
        await Db.execute(
            "UPDATE orders SET refunded_fen = refunded_fen + ?, refunded_at = now(),"
            f" status = CASE WHEN ? THEN '{OrderStatus.REFUNDED}' ELSE status END,"
            " updated_at = now()"
            " WHERE id = ?",
            refund.amount_fen,
            full,
            order.id,
        )
        await notify_events.refund_succeeded(refund, order)  # same transaction as the refund

    async def mark_done(self, out_refund_no: str | None) -> bool:
        """A refund notification: ``processing`` -> ``succeeded``."""
        if not out_refund_no:
            return False
        return (
            await Db.execute(
                f"UPDATE refunds SET status = '{RefundState.SUCCEEDED}', updated_at = now()"
                f" WHERE out_refund_no = ? AND status = '{RefundState.PROCESSING}'",
                out_refund_no,
            )
            == 1
        )

    # -- asking the provider how a refund stands -------------------------------------

    async def query(self, refund_id: int) -> Refund:
        """Ask the provider about one refund and settle what it reports.

        An unknown refund id is ``RefundNotFound`` (404); a refund the provider has
        never seen is ``PaymentRefundUnknown`` (404). Neither writes anything.
        """
        refund = await Refund.find_by_id(refund_id)
        if refund is None:
            raise RefundNotFound(details={"refund_id": refund_id})
        attempt = await PaymentAttempt.find_by_id(refund.attempt_id)
        assert attempt is not None
        result = await self.providers.get(attempt.provider).query_refund(
            attempt.out_trade_no, refund.out_refund_no
        )
        await self._settle(refund, result)
        found = await Refund.find_by_id(refund.id)
        assert found is not None
        return found

    async def _settle(self, refund: Refund, result: RefundResult) -> None:
        if refund.status == "pending":
            # The provider has it: record it exactly as if the refund call had answered.
            await self._record(refund, result)
        elif refund.status == "processing" and result.status is RefundStatus.SUCCEEDED:
            # Its effects were applied when the provider accepted it: only the state moves.
            await self.mark_done(refund.out_refund_no)
        elif refund.status == "processing" and result.status is RefundStatus.FAILED:
            # WeChat ABNORMAL / CLOSED after accepting: money did not reach the buyer.
            # The subscription was already shortened; a human decides (docs: known limits).
            logger.error("refund %s failed at the provider after acceptance", refund.out_refund_no)
            await Db.execute(
                "UPDATE refunds SET error = ?, updated_at = now()"
                " WHERE id = ? AND status = 'processing' AND error IS DISTINCT FROM ?",
                _ABNORMAL,
                refund.id,
                _ABNORMAL,
            )

    async def settle_processing(self, limit: int = 100) -> int:
        """Query every refund left ``processing``; returns how many became ``succeeded``."""
        settled = 0
        for refund in (
            await Refund.query().where("status = 'processing'").order_by("id").limit(limit).all()
        ):
            try:
                after = await self.query(refund.id)
            except AppError as exc:
                logger.warning("refund %s query failed: %s", refund.out_refund_no, exc)
                continue
            settled += after.status == "succeeded"
        return settled

    async def retry_pending(self, limit: int = 100) -> int:
        """Call the provider again for refunds whose outcome is unknown (same number)."""
        done = 0
        for refund in (
            await Refund.query()
            .where(f"status = '{RefundState.PENDING}'")  # a literal: the partial index applies
            .order_by("id")
            .limit(limit)
            .all()
        ):
            try:
                await self.execute(refund)
                done += 1
            except AppError as exc:
                logger.warning("refund %s retry failed: %s", refund.out_refund_no, exc)
        return done


async def _set(refund: Refund, **values: object) -> None:
    for name, value in values.items():
        setattr(refund, name, value)
    await refund.update()


async def settle_refunds_forever(refunds: Refunds, interval_seconds: int) -> None:
    """The service's background job: every ``interval_seconds``, query the refunds left
    ``processing`` (WeChat accepts refunds asynchronously) and settle what the provider
    reports (luser_common.tasks.every: a failed pass is logged, the next runs as usual)."""

    async def one_pass() -> None:
        settled = await refunds.settle_processing()
        if settled:
            logger.info("refunds settled by query: %s", settled)

    await every(interval_seconds, one_pass, name="refund-settlement")
