"""Commerce HTTP routes; ``OPERATIONS`` lists every endpoint."""

from __future__ import annotations

from app.commerce.routes import admin, orders, payment_notify, plans
from app.web.operation import Operation

OPERATIONS: list[Operation] = [
    *plans.OPERATIONS,
    *orders.OPERATIONS,
    *payment_notify.OPERATIONS,
    *admin.OPERATIONS,
]

__all__ = ["OPERATIONS"]
