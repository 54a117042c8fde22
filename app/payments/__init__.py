"""Payments: integer-fen money, and Alipay / WeChat Pay behind one async interface.

    from app.payments import build_providers, PaymentNotifyInvalid
    providers = build_providers(get_config(AppConfig).payment) # enabled ones only
    alipay = providers.get("alipay")                           # NotFound if disabled
    launch = await alipay.create_payment("P20240001", "VIP 月卡", 3000, "page")
    redirect_to(launch.pay_url)        # WeChat: launch.code_url / launch.jsapi_params

    # notification endpoint (raw body, never re-serialised):
    try:
        note = await provider.verify_notification(request.headers, await request.body())
        note.ensure_amount(order.amount_fen)                   # PaymentNotifyMismatch
    except PaymentNotifyInvalid as exc:                        # + Stale / Mismatch subclasses
        return provider.failure_reply(exc)
    ...store note.notification_id UNIQUE, move the order if note.is_paid...
    return provider.success_reply()   # Alipay "success"; WeChat 204

Channel trade numbers: use ``[0-9A-Za-z_]{6,32}`` so one number format suits
both providers. Orders, subscriptions and notification storage live elsewhere
and build on :class:`PaymentProvider`; stub gateways for tests are in
``app.sandbox.payments``.
"""

from app.payments.errors import (
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
    PaymentNotifyStale,
    PaymentProviderError,
    PaymentProviderUnavailable,
    PaymentRefundUnknown,
)
from app.payments.factory import PaymentProviders, build_providers
from app.payments.models import (
    NotifyStatus,
    PaymentLaunch,
    PaymentMethod,
    PaymentNotification,
    RefundResult,
    RefundStatus,
    TradeState,
    TradeStatus,
)
from app.payments.money import fen_to_yuan_str, require_fen, yuan_str_to_fen
from app.payments.providers import AlipayProvider, PaymentProvider, WechatPayProvider

__all__ = [
    "AlipayProvider",
    "NotifyStatus",
    "PaymentLaunch",
    "PaymentMethod",
    "PaymentNotification",
    "PaymentNotifyInvalid",
    "PaymentNotifyMismatch",
    "PaymentNotifyStale",
    "PaymentProvider",
    "PaymentProviderError",
    "PaymentProviderUnavailable",
    "PaymentProviders",
    "PaymentRefundUnknown",
    "RefundResult",
    "RefundStatus",
    "TradeState",
    "TradeStatus",
    "WechatPayProvider",
    "build_providers",
    "fen_to_yuan_str",
    "require_fen",
    "yuan_str_to_fen",
]
