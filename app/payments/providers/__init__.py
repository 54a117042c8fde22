"""Payment providers behind one interface (:class:`PaymentProvider`)."""

from app.payments.providers.alipay import AlipayProvider
from app.payments.providers.base import PaymentProvider
from app.payments.providers.wechat import WechatPayProvider

__all__ = ["AlipayProvider", "PaymentProvider", "WechatPayProvider"]
