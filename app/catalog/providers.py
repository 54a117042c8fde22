"""Which VOD provider serves a video, and the error guard around provider calls."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from app.vod.base import VodProvider
from luser_common import AppError, ConfigError, ExternalServiceError

T = TypeVar("T")


class ProviderLookup(Protocol):
    """``app.vod.VodRegistry`` or anything shaped like it (tests pass stubs)."""

    def get(self, name: str | None = None) -> VodProvider: ...

    async def aclose(self) -> None: ...


class VodNotConfigured(ExternalServiceError):
    """The provider a video names has no credentials configured on this server."""

    status_code = 503
    code = "VOD_NOT_CONFIGURED"
    default_message = "视频点播服务未配置"


def pick(lookup: ProviderLookup, name: str) -> VodProvider:
    """The provider ``name``; an unusable configuration is a 503, not a crash."""
    try:
        return lookup.get(name)
    except ConfigError as exc:
        raise VodNotConfigured(
            f"视频点播服务未配置: {exc.message}", details={"provider": name}
        ) from exc


async def guarded(provider: str, call: Awaitable[T]) -> T:
    """Await a provider call; anything that is not already an AppError becomes a 502."""
    try:
        return await call
    except ConfigError as exc:
        # Missing provider settings are an operator's task, not a crash: say so with a 503.
        raise VodNotConfigured(
            f"视频点播服务未配置: {exc.message}", details={"provider": provider}
        ) from exc
    except AppError:
        raise
    except Exception as exc:  # an SDK bug or an unexpected reply must not become a 500
        raise ExternalServiceError(
            f"视频点播服务调用失败: {type(exc).__name__}", details={"provider": provider}
        ) from exc
