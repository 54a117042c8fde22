"""Wallet top-ups: an order of kind ``topup`` buys open API wallet credit.

The credit is written by :func:`credit_wallet` inside the transaction that marks
the order paid (``Payments._apply_paid``), only when that conditional update took
the row: a duplicate notification finds the order paid and credits nothing, and a
failure between the two writes rolls both back. The wallet's own service function
(``app.open_api.manage.top_up``) does the write, keyed by the order number, which
makes a second credit for one order impossible even by mistake.
"""

from __future__ import annotations

from app.commerce.models import Order
from app.open_api import manage
from app.open_api.money import NANO_PER_CNY

__all__ = ["FEN_TO_NANO", "credit_wallet", "wallet_reference"]

# The wallet counts nano-units (1 CNY = 10**9); orders count fen (1 CNY = 100).
FEN_TO_NANO = NANO_PER_CNY // 100


def wallet_reference(order: Order) -> str:
    """The wallet ledger's idempotency key for a top-up order."""
    return f"order:{order.order_no}"


async def credit_wallet(order: Order) -> None:
    """Credit the buyer's wallet with the order's amount (joins the caller's transaction)."""
    await manage.top_up(
        order.user_id,
        order.amount_fen * FEN_TO_NANO,
        reference=wallet_reference(order),
        note=f"钱包充值订单 {order.order_no}",
    )
