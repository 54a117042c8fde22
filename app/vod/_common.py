"""Helpers shared by the provider implementations."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

from luser_common import (
    ConfigError,
    DeserializationError,
    ExternalServiceError,
    NetworkError,
    NotFound,
)
from luser_common.http import decode_json

T = TypeVar("T")

# Provider display names for the Chinese messages.
DISPLAY = {"tencent": "腾讯云点播", "aliyun": "阿里云视频点播"}


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call in a worker thread, keeping the event loop free."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


def now() -> float:
    return time.time()


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _details(provider: str, code: str, request_id: str | None, message: str) -> dict[str, Any]:
    details: dict[str, Any] = {"provider": provider, "code": code}
    if request_id:
        details["request_id"] = request_id
    if message:
        details["provider_message"] = message[:300]
    return details


def provider_error(
    provider: str, code: str, message: str = "", request_id: str | None = None
) -> ExternalServiceError:
    return ExternalServiceError(
        f"{DISPLAY.get(provider, provider)}调用失败: {code}",
        details=_details(provider, code, request_id, message),
    )


def unreachable(provider: str, code: str) -> NetworkError:
    # The transport's own message names internal hosts and ports: it stays in __cause__.
    return NetworkError(
        f"{DISPLAY.get(provider, provider)}暂时无法访问, 请稍后重试",
        details=_details(provider, code, None, ""),
    )


def media_not_found(provider: str, media_id: str, code: str = "NotFound") -> NotFound:
    return NotFound(
        f"{DISPLAY.get(provider, provider)}中不存在该媒体文件",
        details={"provider": provider, "code": code, "media_id": media_id},
    )


def missing_setting(provider: str, setting: str) -> ConfigError:
    return ConfigError(f"{DISPLAY.get(provider, provider)}缺少配置: vod.{provider}.{setting}")


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def json_object(body: bytes) -> dict[str, Any]:
    """Decode a callback body that must be a JSON object."""
    try:
        data = decode_json(body)  # the same limits as request bodies (depth, numbers)
    except DeserializationError as exc:
        raise DeserializationError(f"回调内容不是合法的 JSON: {exc.message}") from exc
    if not isinstance(data, dict):
        raise DeserializationError("回调内容必须是 JSON 对象")
    return data


def as_float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
