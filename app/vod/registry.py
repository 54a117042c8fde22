"""The VOD port's one registry: every provider by name, and everything derived from it.

``VOD_PROVIDERS`` maps a provider name (a video's ``provider`` column, the callback
route's ``{provider}``, a ``[vod.<name>]`` config section) to its :class:`ProviderSpec`:
the provider class, its config model and its sandbox stand-in. Adding a provider is
one module plus one line here; the name check, the config sections
(``app.settings.vod_config_model``: one typed ``[vod.<name>]`` field per entry), the
callback route and the sandbox all read this dict. Register before the config is
loaded: a load types the sections of the providers registered at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, WithJsonSchema

from app.settings import AliyunVodConfig, TencentVodConfig, VodConfig
from app.vod.aliyun import AliyunVodProvider
from app.vod.base import VodProvider
from app.vod.tencent import TencentVodProvider
from luser_common import ValidationError

__all__ = [
    "PROVIDER_NAMES",
    "VOD_PROVIDERS",
    "ProviderSpec",
    "VodProviderName",
    "VodRegistry",
    "check_vod_name",
    "provider_for",
    "vod_section",
]


@dataclass(frozen=True)
class ProviderSpec:
    """How to build one VOD provider: its class, its config model and its sandbox.

    ``sandbox`` is the dotted path of the stand-in class (``module:Class``): stand-ins
    are imported only when the sandbox runs, never by a production service.
    """

    provider: type[VodProvider]
    config: type[BaseModel]
    sandbox: str


_SANDBOX = "app.sandbox.vod_sandbox"

VOD_PROVIDERS: dict[str, ProviderSpec] = {
    "tencent": ProviderSpec(TencentVodProvider, TencentVodConfig, f"{_SANDBOX}:SandboxTencentVod"),
    "aliyun": ProviderSpec(AliyunVodProvider, AliyunVodConfig, f"{_SANDBOX}:SandboxAliyunVod"),
}

# The names known at import time (docs, OpenAPI enums); code checks VOD_PROVIDERS itself.
PROVIDER_NAMES = tuple(VOD_PROVIDERS)


def check_vod_name(name: str) -> str:
    """``name`` if it is a registered provider, else a 422 naming the allowed ones."""
    if name not in VOD_PROVIDERS:
        raise ValidationError(
            f"不支持的视频点播服务: {name}",
            field="provider",
            details={"allowed": sorted(VOD_PROVIDERS)},
        )
    return name


def _pydantic_vod_name(name: str) -> str:
    # Inside a pydantic model a ValueError becomes the model's own 422 with the field path.
    if name not in VOD_PROVIDERS:
        raise ValueError(f"不支持的视频点播服务, 可选: {', '.join(sorted(VOD_PROVIDERS))}")
    return name


# A request field naming a VOD provider: validated against the registry when the request
# arrives (so a provider registered later is accepted), documented as the current names.
VodProviderName = Annotated[
    str,
    AfterValidator(_pydantic_vod_name),
    WithJsonSchema({"type": "string", "enum": list(PROVIDER_NAMES)}),
]


def vod_section(vod_config: VodConfig, name: str) -> BaseModel:
    """The ``[vod.<name>]`` section as the provider's config model; its defaults when
    ``vod_config`` was loaded before ``name`` was registered."""
    spec = VOD_PROVIDERS[check_vod_name(name)]
    value: Any = getattr(vod_config, name, None)
    return value if isinstance(value, spec.config) else spec.config()


def provider_for(name: str, vod_config: VodConfig) -> VodProvider:
    """A new provider named ``name`` built from ``vod_config``; unknown names are a 422."""
    spec = VOD_PROVIDERS[check_vod_name(name)]
    return spec.provider(vod_section(vod_config, name))  # type: ignore[call-arg]


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
