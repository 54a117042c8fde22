"""Domain enums shared by the service and its clients; values are stable lower-case strings."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "OrderStatus",
    "PaymentChannel",
    "PaymentStatus",
    "SubscriptionStatus",
    "UserRole",
    "UserStatus",
    "VideoStatus",
    "VodProviderName",
]


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"


class VideoStatus(StrEnum):
    DRAFT = "draft"
    PROCESSING = "processing"
    PUBLISHED = "published"
    OFFLINE = "offline"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"
    CLOSED = "closed"
    EXPIRED = "expired"


class PaymentChannel(StrEnum):
    ALIPAY = "alipay"
    WECHAT = "wechat"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"
    REFUNDED = "refunded"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class VodProviderName(StrEnum):
    TENCENT = "tencent"
    ALIYUN = "aliyun"
