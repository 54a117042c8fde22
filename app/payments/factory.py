"""Build the enabled providers from the ``payment`` config section."""

from __future__ import annotations

from app.payments.providers import AlipayProvider, PaymentProvider, WechatPayProvider
from app.settings import PaymentConfig
from luser_common.errors import NotFound

__all__ = ["PaymentProviders", "build_providers"]


class PaymentProviders:
    """The enabled providers by name (``"alipay"``, ``"wechat"``)."""

    def __init__(self, providers: dict[str, PaymentProvider]) -> None:
        self._providers = dict(providers)

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> PaymentProvider:
        """The provider called ``name``; NotFound if it is unknown or disabled."""
        try:
            return self._providers[name]
        except KeyError:
            raise NotFound(f"支付渠道不存在或未启用: {name}", details={"provider": name}) from None


def build_providers(config: PaymentConfig) -> PaymentProviders:
    """Construct every enabled provider; ConfigError if an enabled one is misconfigured.

    Construction is offline: keys are parsed locally, nothing is fetched.
    """
    providers: dict[str, PaymentProvider] = {}
    if config.alipay.enabled:
        providers[AlipayProvider.name] = AlipayProvider(config.alipay)
    if config.wechat.enabled:
        providers[WechatPayProvider.name] = WechatPayProvider(config.wechat)
    return PaymentProviders(providers)
