"""The states of commerce rows, as stored: each enum's values are exactly what the
table's CHECK constraint allows (tests/app/test_status_enums.py compares them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AttemptStatus",
    "OrderKind",
    "OrderStatus",
    "RefundKind",
    "RefundState",
    "SubscriptionStatus",
]


class OrderStatus(StrEnum):
    """``orders.status``: pending until paid, closed or expired; refunded after paid."""

    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"
    CLOSED = "closed"
    EXPIRED = "expired"


class AttemptStatus(StrEnum):
    """``payment_attempts.status``: one try to pay an order through one channel."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"
    REFUNDED = "refunded"


class RefundState(StrEnum):
    """``refunds.status``: our refund row (the provider's answer is ``RefundStatus``)."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundKind(StrEnum):
    """``refunds.kind``: asked for by an admin, or automatic for a payment that came late."""

    ADMIN = "admin"
    LATE_PAYMENT = "late_payment"


class SubscriptionStatus(StrEnum):
    """``subscriptions.status``: a grant in force, or taken back by a refund."""

    ACTIVE = "active"
    REVOKED = "revoked"


class OrderKind(StrEnum):
    """``orders.kind``: a plan (a subscription) or wallet credit for the open API."""

    PLAN = "plan"
    TOPUP = "topup"
