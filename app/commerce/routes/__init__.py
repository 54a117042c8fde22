"""Commerce HTTP routes; ``OPERATIONS`` lists every endpoint."""

from __future__ import annotations

from app.routes._api import Operation

from . import admin_commerce, orders, payment_notify, plans

OPERATIONS: list[Operation] = [
    *plans.OPERATIONS,
    *orders.OPERATIONS,
    *payment_notify.OPERATIONS,
    *admin_commerce.OPERATIONS,
]

__all__ = ["OPERATIONS"]
