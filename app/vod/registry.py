"""Choosing a provider: by name (a video's ``provider`` column) or the configured default."""

from __future__ import annotations

from app.settings import VodConfig
from app.vod.aliyun import AliyunVodProvider
from app.vod.base import VodProvider
from app.vod.tencent import TencentVodProvider
from luser_common import ValidationError

__all__ = ["PROVIDER_NAMES", "VodRegistry", "provider_for"]

PROVIDER_NAMES = ("tencent", "aliyun")


def provider_for(name: str, vod_config: VodConfig) -> VodProvider:
    """A new provider named ``name`` built from ``vod_config``; unknown names are a 422."""
    if name == "tencent":
        return TencentVodProvider(vod_config.tencent)
    if name == "aliyun":
        return AliyunVodProvider(vod_config.aliyun)
    raise ValidationError(
        f"不支持的视频点播服务: {name}", field="provider", details={"allowed": list(PROVIDER_NAMES)}
    )


class VodRegistry:
    """One provider instance per name, created on first use (SDK clients are reused)."""

    def __init__(self, vod_config: VodConfig) -> None:
        self.config = vod_config
        self._providers: dict[str, VodProvider] = {}

    @property
    def default_name(self) -> str:
        return self.config.default_provider

    def get(self, name: str | None = None) -> VodProvider:
        """The provider ``name``, or the default one when ``name`` is None or empty."""
        name = name or self.default_name
        if name not in self._providers:
            self._providers[name] = provider_for(name, self.config)
        return self._providers[name]

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
