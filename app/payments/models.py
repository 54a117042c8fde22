"""Provider-neutral values: what a payment provider returns to the service.

Amounts are integer fen; times are timezone-aware. ``raw`` keeps the provider's
own fields (for audit storage), never used for decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.payments.errors import PaymentNotifyMismatch

__all__ = [
    "NotifyStatus",
    "PaymentLaunch",
    "PaymentMethod",
    "PaymentNotification",
    "RefundResult",
    "RefundStatus",
    "TradeState",
    "TradeStatus",
]


class PaymentMethod(StrEnum):
    """How the buyer pays (the order API's pay types).

    Alipay: ``page`` (PC cashier), ``wap`` (mobile browser), ``app`` (signed order
    string for the Alipay app SDK), ``precreate`` (QR ``qr_code`` the buyer scans).
    WeChat: ``native`` (QR ``code_url``), ``jsapi`` (inside WeChat, needs an
    openid), ``h5`` (an ordinary mobile browser: ``h5_url``, needs the payer's IP),
    ``app`` (``app_params`` for the WeChat open SDK, the mobile app's own appid),
    ``miniprogram`` (``jsapi_params`` for ``wx.requestPayment``, the mini program's
    own appid and an openid under it).
    """

    PAGE = "page"
    WAP = "wap"
    NATIVE = "native"
    JSAPI = "jsapi"
    H5 = "h5"
    APP = "app"
    MINIPROGRAM = "miniprogram"
    PRECREATE = "precreate"


class TradeStatus(StrEnum):
    """A trade as the provider sees it now (``query``).

    ``not_found``: the provider has no such trade. For Alipay this is normal
    until the buyer opens the cashier, so treat it like ``pending`` for young
    orders.
    """

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    CLOSED = "closed"
    REFUNDED = "refunded"
    NOT_FOUND = "not_found"


class NotifyStatus(StrEnum):
    """What a verified notification announces. Only ``succeeded`` means "paid"."""

    SUCCEEDED = "succeeded"
    CLOSED = "closed"
    REFUNDED = "refunded"
    OTHER = "other"


class RefundStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PaymentLaunch:
    """What the front end needs to start paying.

    Alipay page/wap: ``pay_url`` (redirect the browser); app: ``order_string``
    (hand to the Alipay app SDK); precreate: ``qr_code`` (render as QR).
    WeChat NATIVE: ``code_url`` (render as QR). JSAPI and mini program:
    ``jsapi_params`` for ``WeixinJSBridge`` ``getBrandWCPayRequest`` /
    ``wx.requestPayment`` (appId, timeStamp, nonceStr, package, signType, paySign).
    H5: ``h5_url`` (open it in the mobile browser). APP: ``app_params`` for the
    open SDK's ``PayReq`` (appid, partnerid, prepayid, package, noncestr, timestamp, sign).
    """

    provider: str
    method: PaymentMethod
    out_trade_no: str
    amount_fen: int
    pay_url: str | None = None
    code_url: str | None = None
    prepay_id: str | None = None
    jsapi_params: dict[str, str] | None = None
    h5_url: str | None = None
    app_params: dict[str, str] | None = None
    order_string: str | None = None
    qr_code: str | None = None


@dataclass(frozen=True, slots=True)
class TradeState:
    provider: str
    out_trade_no: str
    status: TradeStatus
    amount_fen: int | None = None
    trade_no: str | None = None
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefundResult:
    provider: str
    out_trade_no: str
    out_refund_no: str
    refund_fen: int
    status: RefundStatus
    refund_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PaymentNotification:
    """A verified, normalised notification.

    ``notification_id`` is stable across the provider's resends (Alipay
    ``notify_id``, WeChat event ``id``): store it under a UNIQUE key.
    The provider already checked ``app_id`` and ``mch_id`` against its own
    config; the caller still checks the order with :meth:`ensure_amount`.
    """

    provider: str
    notification_id: str
    event_type: str
    out_trade_no: str
    trade_no: str | None
    amount_fen: int
    currency: str
    status: NotifyStatus
    app_id: str | None
    mch_id: str | None
    paid_at: datetime | None
    refund_fen: int | None = None
    out_refund_no: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_paid(self) -> bool:
        return self.status is NotifyStatus.SUCCEEDED

    def ensure_amount(self, expected_fen: int, currency: str = "CNY") -> None:
        """Raise PaymentNotifyMismatch unless amount and currency equal the order's."""
        if self.currency != currency:
            raise PaymentNotifyMismatch(self.provider, "currency", "支付通知币种与订单不符")
        if isinstance(expected_fen, bool) or not isinstance(expected_fen, int):
            raise TypeError("expected_fen must be an int amount in fen")
        if self.amount_fen != expected_fen:
            raise PaymentNotifyMismatch(self.provider, "amount", "支付通知金额与订单不符")
