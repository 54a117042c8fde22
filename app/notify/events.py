"""The commerce events that notify a subscriber; each is called inside the event's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.notify.outbox import enqueue

if TYPE_CHECKING:
    from app.commerce.models import Order, Refund

__all__ = ["payment_succeeded", "refund_succeeded"]


async def payment_succeeded(order: Order) -> bool:
    """The order was just marked paid (one message per order)."""
    return await enqueue(
        order.user_id,
        "payment_succeeded",
        f"payment_succeeded:{order.id}",
        {
            "order_id": order.id,
            "order_no": order.order_no,
            "plan_name": order.plan_name,
            "amount_fen": order.amount_fen,
        },
    )


async def refund_succeeded(refund: Refund, order: Order) -> bool:
    """The provider accepted a refund of ``order`` (one message per refund)."""
    return await enqueue(
        order.user_id,
        "refund_succeeded",
        f"refund_succeeded:{refund.id}",
        {
            "order_id": order.id,
            "order_no": order.order_no,
            "refund_id": refund.id,
            "amount_fen": refund.amount_fen,
        },
    )
