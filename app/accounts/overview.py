"""One user as an operator sees it: account, recent orders, subscription and wallet.

Shared by ``GET /api/admin/users/{id}`` and ``luser users show``; it reads the
commerce and open-API tables through their own models and services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.accounts.models import User
from app.accounts.service import Accounts
from app.commerce.models import Order
from app.commerce.subscriptions import Subscriptions, SubscriptionStatusView
from app.open_api import manage

__all__ = ["RECENT_ORDERS", "UserOverview", "user_overview"]

RECENT_ORDERS = 20


@dataclass(frozen=True)
class UserOverview:
    user: User
    orders: list[Order]
    subscription: SubscriptionStatusView
    wallet: dict[str, Any]


async def user_overview(accounts: Accounts, user_id: int) -> UserOverview:
    """The user (404 when unknown), their newest orders, subscription and wallet balance."""
    user = await accounts.user(user_id)
    orders = (
        await Order.query()
        .where("user_id = ?", user_id)
        .order_by("id desc")
        .limit(RECENT_ORDERS)
        .all()
    )
    subscription = await Subscriptions().status(user_id)
    return UserOverview(user, list(orders), subscription, await manage.wallet(user_id))
