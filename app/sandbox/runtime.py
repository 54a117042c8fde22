"""Sandbox mode at run time: one stand-in per registered provider, in this process.

The stand-ins are threaded HTTP servers on 127.0.0.1 free ports rather than routes of
the service: the Tencent and Aliyun SDKs always call ``/`` of their endpoint, and the
pages a buyer opens (Alipay's cashier, WeChat's scan page, the CDN's video) live where
the real provider serves them, so the service's own code paths are the production ones.
"""

from __future__ import annotations

import importlib
import logging
from types import TracebackType
from typing import Any, Protocol

import anyio.to_thread
from pydantic import BaseModel

from app.payments.factory import PAYMENT_PROVIDERS
from app.settings import AppConfig, payment_config_model, vod_config_model
from app.vod.registry import VOD_PROVIDERS

__all__ = ["Sandbox", "StandIn", "load_stand_in", "service_url"]

logger = logging.getLogger("luser.sandbox")

LOCAL_HOSTS = ("0.0.0.0", "::", "")


class StandIn(Protocol):
    """What a registry's sandbox class provides."""

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def sandbox_config(self, service_url: str) -> BaseModel:
        """The provider's config section aimed at this running stand-in."""
        ...


def load_stand_in(path: str) -> StandIn:
    """A new stand-in from a registry's ``module:Class`` path."""
    module, _, name = path.partition(":")
    factory = getattr(importlib.import_module(module), name)
    stand_in: StandIn = factory()
    return stand_in


def service_url(config: AppConfig) -> str:
    """Where the stand-ins send notifications: ``sandbox.public_url`` or this server."""
    if config.sandbox.public_url:
        return config.sandbox.public_url.rstrip("/")
    host = config.server.host
    host = "127.0.0.1" if host in LOCAL_HOSTS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.server.port}"


class Sandbox:
    """Starts every registered provider's stand-in; the config it yields uses them."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.vod: dict[str, StandIn] = {}
        self.payment: dict[str, StandIn] = {}

    def start(self) -> AppConfig:
        url = service_url(self.config)
        try:
            for name, vod_spec in VOD_PROVIDERS.items():
                self.vod[name] = self._started(vod_spec.sandbox)
            for name, pay_spec in PAYMENT_PROVIDERS.items():
                self.payment[name] = self._started(pay_spec.sandbox)
        except BaseException:
            self.stop()
            raise
        vod = {name: s.sandbox_config(url) for name, s in self.vod.items()}
        payment = {name: s.sandbox_config(url) for name, s in self.payment.items()}
        vod_config = vod_config_model().model_validate({**dict(self.config.vod), **vod})
        payment_config = payment_config_model().model_validate(
            {**dict(self.config.payment), **payment}
        )
        return self.config.model_copy(update={"vod": vod_config, "payment": payment_config})

    def _started(self, path: str) -> StandIn:
        stand_in = load_stand_in(path)
        stand_in.start()
        return stand_in

    def stop(self) -> None:
        for stand_in in [*self.vod.values(), *self.payment.values()]:
            stand_in.stop()
        self.vod, self.payment = {}, {}

    async def __aenter__(self) -> AppConfig:
        # Key generation and binding block for a moment: not on the event loop.
        config = await anyio.to_thread.run_sync(self.start)
        logger.warning(
            "沙箱模式: 视频点播和支付使用内置沙箱 (不连接真实服务商, 不产生真实扣款); 通知发往 %s",
            service_url(self.config),
        )
        return config

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)
