"""The payment port's one registry, and the enabled providers built from it.

``PAYMENT_PROVIDERS`` maps a provider name (an attempt's ``provider`` column, the
notify route's ``{provider}``, a ``[payment.<name>]`` config section) to its
:class:`ProviderSpec`. Adding a provider is one module plus one line here; the config
section (``app.settings.payment_config_model``: one typed ``[payment.<name>]`` field per
entry) derives from it. Register before the config is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, WithJsonSchema

from app.payments.providers import AlipayProvider, PaymentProvider, WechatPayProvider
from app.settings import AlipayConfig, PaymentConfig, WechatPayConfig
from luser_common.errors import NotFound

__all__ = [
    "PAYMENT_PROVIDERS",
    "PaymentProviderName",
    "PaymentProviders",
    "ProviderSpec",
    "build_providers",
    "payment_section",
]


@dataclass(frozen=True)
class ProviderSpec:
    """How to build one payment provider: its class, its config model (with an
    ``enabled`` flag) and its sandbox stand-in (``module:Class``, imported only when
    the sandbox runs)."""

    provider: type[PaymentProvider]
    config: type[BaseModel]
    sandbox: str


PAYMENT_PROVIDERS: dict[str, ProviderSpec] = {
    "alipay": ProviderSpec(AlipayProvider, AlipayConfig, "app.sandbox.cashier:SandboxAlipay"),
    "wechat": ProviderSpec(WechatPayProvider, WechatPayConfig, "app.sandbox.cashier:SandboxWechat"),
}


def _pydantic_payment_name(name: str) -> str:
    if name not in PAYMENT_PROVIDERS:
        raise ValueError(f"不支持的支付渠道, 可选: {', '.join(sorted(PAYMENT_PROVIDERS))}")
    return name


# A request field naming a payment provider, checked against the registry on arrival.
PaymentProviderName = Annotated[
    str,
    AfterValidator(_pydantic_payment_name),
    WithJsonSchema({"type": "string", "enum": list(PAYMENT_PROVIDERS)}),
]


def payment_section(config: PaymentConfig, name: str) -> BaseModel:
    """The ``[payment.<name>]`` section as the provider's config model; its defaults when
    ``config`` was loaded before ``name`` was registered."""
    spec = PAYMENT_PROVIDERS[name]
    value: Any = getattr(config, name, None)
    return value if isinstance(value, spec.config) else spec.config()


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
    for name, spec in PAYMENT_PROVIDERS.items():
        section = payment_section(config, name)
        if getattr(section, "enabled", False):
            providers[name] = spec.provider(section)  # type: ignore[call-arg]
    return PaymentProviders(providers)
