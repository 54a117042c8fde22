"""The commerce tables as luser_db models (migrations 0020-0023).

Every amount is an ``int`` in fen; the ORM refuses a float for an ``int`` field.
"""

from __future__ import annotations

from datetime import datetime

from app.commerce.status import (
    AttemptStatus,
    OrderStatus,
    RefundKind,
    RefundState,
    SubscriptionStatus,
)
from luser_db import Field, Model

__all__ = [
    "Order",
    "PaymentAttempt",
    "PaymentEvent",
    "Plan",
    "Refund",
    "Subscription",
    "SubscriptionPeriod",
]


class Plan(Model, table="plans"):
    id: int = Field(primary_key=True)
    name: str = ""
    description: str = ""
    level: int = 1
    duration_days: int = 30
    price_fen: int = 0
    active: bool = True
    sort_order: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Order(Model, table="orders"):
    id: int = Field(primary_key=True)
    order_no: str = ""
    user_id: int = 0
    kind: str = "plan"  # "plan" or "topup" (wallet credit: no plan, level 0, 0 days)
    plan_id: int | None = None
    plan_name: str = ""
    plan_level: int = 1
    duration_days: int = 1
    amount_fen: int = 0
    currency: str = "CNY"
    status: str = OrderStatus.PENDING
    refunded_fen: int = 0
    paid_attempt_id: int | None = None
    expires_at: datetime | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunded_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class PaymentAttempt(Model, table="payment_attempts"):
    id: int = Field(primary_key=True)
    order_id: int = 0
    provider: str = ""
    method: str = ""
    out_trade_no: str = ""
    amount_fen: int = 0
    status: str = AttemptStatus.PENDING
    trade_no: str | None = None
    launch: dict | None = None
    error: str | None = None
    flagged: bool = False
    flag_reason: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    checked_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class PaymentEvent(Model, table="payment_events"):
    id: int = Field(primary_key=True)
    provider: str = ""
    notification_id: str = ""
    source: str = "notify"
    event_type: str = ""
    out_trade_no: str = ""
    attempt_id: int | None = None
    status: str = ""
    amount_fen: int = 0
    outcome: str | None = None
    reason: str | None = None
    raw: dict = Field(default_factory=dict)
    received_at: datetime | None = Field(default=None, generated=True)
    processed_at: datetime | None = None


class Refund(Model, table="refunds"):
    id: int = Field(primary_key=True)
    order_id: int = 0
    attempt_id: int = 0
    kind: str = RefundKind.ADMIN
    out_refund_no: str = ""
    amount_fen: int = 0
    reason: str = ""
    status: str = RefundState.PENDING
    refund_id: str | None = None
    error: str | None = None
    created_by: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Subscription(Model, table="subscriptions"):
    """One grant: the time one paid order bought, at the plan's level."""

    id: int = Field(primary_key=True)
    user_id: int = 0
    order_id: int = 0
    plan_id: int = 0
    level: int = 1
    granted_at: datetime | None = None
    purchased_seconds: int = 0
    duration_seconds: int = 0
    status: str = SubscriptionStatus.ACTIVE
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SubscriptionPeriod(Model, table="subscription_periods"):
    """A stretch of the user's schedule during which one grant is being used."""

    id: int = Field(primary_key=True)
    user_id: int = 0
    subscription_id: int = 0
    level: int = 1
    starts_at: datetime | None = None
    ends_at: datetime | None = None
