"""Upstream VOD clients per channel: the channel's own credentials and base URL.

A channel is one provider account. Its sealed credentials are the provider's
config fields (``secret_id``/``secret_key``/``play_key``... for Tencent,
``access_key_id``/``access_key_secret``/``url_auth_key``... for Aliyun) laid
over the service's ``vod`` section; ``base_url`` (e.g. ``http://127.0.0.1:9000``)
replaces the API endpoint. Clients are built on first use and reused until the
channel's row changes.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol
from urllib.parse import urlsplit

from app.open_api.router import ChannelInfo
from app.open_api.secretbox import SecretBox
from app.settings import AliyunVodConfig, TencentVodConfig, VodConfig
from app.vod.aliyun import AliyunVodProvider
from app.vod.base import VodProvider
from app.vod.registry import vod_section
from app.vod.tencent import TencentVodProvider
from luser_common import ConfigError

__all__ = ["ChannelClients", "UpstreamFactory"]

CREDENTIALS_AAD = "open_api.channels.credentials"


class UpstreamFactory(Protocol):
    def get(self, channel: ChannelInfo) -> VodProvider: ...

    async def aclose(self) -> None: ...


class ChannelClients:
    """VodProvider instances keyed by channel (rebuilt when the channel row changes)."""

    def __init__(self, box: SecretBox, vod: VodConfig | None = None) -> None:
        self._box = box
        self._vod = vod or VodConfig()
        self._clients: dict[int, tuple[str, VodProvider]] = {}

    def get(self, channel: ChannelInfo) -> VodProvider:
        fingerprint = hashlib.sha256(
            f"{channel.provider}\0{channel.base_url}\0{channel.credentials}".encode()
        ).hexdigest()
        cached = self._clients.get(channel.id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        client = self._build(channel)
        self._clients[channel.id] = (fingerprint, client)
        return client

    def _build(self, channel: ChannelInfo) -> VodProvider:
        creds: dict[str, Any] = self._box.open(channel.credentials, CREDENTIALS_AAD)
        overrides = {**creds, **_endpoint(channel.base_url)}
        try:
            if channel.provider == "tencent":
                base = vod_section(self._vod, "tencent").model_dump()
                return TencentVodProvider(TencentVodConfig.model_validate({**base, **overrides}))
            if channel.provider == "aliyun":
                base = vod_section(self._vod, "aliyun").model_dump()
                return AliyunVodProvider(AliyunVodConfig.model_validate({**base, **overrides}))
        except ValueError as exc:  # pydantic: unknown or invalid credential fields
            raise ConfigError(f"通道 {channel.name} 的凭证配置无效") from exc
        raise ConfigError(f"通道 {channel.name} 的服务商不受支持: {channel.provider}")

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for _, client in clients:
            await client.aclose()


def _endpoint(base_url: str) -> dict[str, str]:
    if not base_url:
        return {}
    parts = urlsplit(base_url)
    return {"endpoint": parts.netloc, "protocol": parts.scheme or "https"}
