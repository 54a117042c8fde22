"""Errors raised when a payment notification cannot be trusted.

    BadRequest (luser_common)     400
    └── PaymentNotifyInvalid      400 PAYMENT_NOTIFY_INVALID   signature, format, key, serial
        ├── PaymentNotifyStale    400 PAYMENT_NOTIFY_STALE     WeChat timestamp out of window
        └── PaymentNotifyMismatch 400 PAYMENT_NOTIFY_MISMATCH  app id, merchant, amount, currency

``details`` is ``{"provider": ..., "reason": ...}`` so logs and tests can tell the
cases apart. Provider *calls* (pay, query, close, refund) fail differently:

    ExternalServiceError (luser_common) 502 EXTERNAL_SERVICE_ERROR
    └── PaymentProviderError            refused / bad reply; details["code"] = provider code
    NetworkError (luser_common)         503 NETWORK_ERROR
    └── PaymentProviderUnavailable      unreachable or timed out (outcome unknown)
    NotFound (luser_common)             404
    └── PaymentRefundUnknown            404 PAYMENT_REFUND_UNKNOWN  refund query: no such refund
"""

from __future__ import annotations

from typing import Any

from luser_common.errors import BadRequest, ExternalServiceError, NetworkError, NotFound

__all__ = [
    "PaymentNotifyInvalid",
    "PaymentNotifyMismatch",
    "PaymentNotifyStale",
    "PaymentProviderError",
    "PaymentProviderUnavailable",
    "PaymentRefundUnknown",
    "provider_error",
    "provider_unavailable",
]


class PaymentNotifyInvalid(BadRequest):
    """A notification failed verification; never act on it."""

    code = "PAYMENT_NOTIFY_INVALID"
    default_message = "支付通知验证失败"

    def __init__(self, provider: str, reason: str, message: str | None = None) -> None:
        super().__init__(message, details={"provider": provider, "reason": reason})
        self.provider = provider
        self.reason = reason


class PaymentNotifyStale(PaymentNotifyInvalid):
    """The notification's timestamp is too far from now (possible replay)."""

    code = "PAYMENT_NOTIFY_STALE"
    default_message = "支付通知已过期"


class PaymentNotifyMismatch(PaymentNotifyInvalid):
    """Authentic, but for another app / merchant, or not matching the order."""

    code = "PAYMENT_NOTIFY_MISMATCH"
    default_message = "支付通知与商户或订单信息不符"


class PaymentProviderError(ExternalServiceError):
    """The provider refused a call or answered nonsense (502, code EXTERNAL_SERVICE_ERROR).

    ``provider_code`` is the provider's own code (``ACQ.TRADE_STATUS_ERROR``,
    ``ORDER_PAID``, ...) or ours (``SIGNATURE_INVALID``, ``BAD_RESPONSE``,
    ``HTTP_502``); ``raw`` keeps the provider's reply for logs, and stays out
    of the HTTP envelope.
    """

    def __init__(
        self, provider: str, provider_code: str, message: str = "", raw: Any = None
    ) -> None:
        text = f"{provider} 支付服务调用失败: {provider_code}"
        if message:
            text = f"{text} ({message})"
        details = {"provider": provider, "code": provider_code}
        if message:
            details["message"] = message
        super().__init__(text, details=details)
        self.provider = provider
        self.provider_code = provider_code
        self.raw = raw


class PaymentProviderUnavailable(NetworkError):
    """The provider could not be reached or did not answer in time (503, retryable).

    For a pay or refund call the outcome is then unknown: query before retrying.
    """

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(
            f"{provider} 支付服务暂不可用", details={"provider": provider, "reason": reason}
        )
        self.provider = provider


class PaymentRefundUnknown(NotFound):
    """A refund query for a refund number the provider has never seen."""

    code = "PAYMENT_REFUND_UNKNOWN"
    default_message = "支付渠道查无此退款"

    def __init__(self, provider: str, out_refund_no: str) -> None:
        super().__init__(
            f"{provider} 查无此退款: {out_refund_no}",
            details={"provider": provider, "out_refund_no": out_refund_no},
        )
        self.provider = provider


def provider_error(
    provider: str, code: str, message: str = "", raw: Any = None
) -> PaymentProviderError:
    return PaymentProviderError(provider, code, message, raw)


def provider_unavailable(provider: str, reason: str) -> PaymentProviderUnavailable:
    return PaymentProviderUnavailable(provider, reason)
