"""A third VOD provider that exists only in tests: the provider, its config model and
its sandbox stand-in. Registering it is one line (``VOD_PROVIDERS["fake"] = SPEC``)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from app.vod.base import (
    CallbackRejected,
    MediaInfo,
    MediaStatus,
    SignedUrl,
    UploadCredentials,
    VodEvent,
    VodEventKind,
    VodProvider,
)
from app.vod.registry import ProviderSpec


class FakeVodConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cdn: str = "https://cdn.fake.invalid"
    callback_token: SecretStr = SecretStr("fake-token")


class FakeVodProvider(VodProvider):
    name: ClassVar[str] = "fake"

    def __init__(self, config: FakeVodConfig) -> None:
        self.config = config

    async def upload_credentials(
        self,
        title: str,
        file_name: str,
        *,
        description: str | None = None,
        category_id: int | None = None,
        source_context: str | None = None,
        ttl: int | None = None,
    ) -> UploadCredentials:
        expires = datetime.now(UTC) + timedelta(seconds=ttl or 600)
        return UploadCredentials(self.name, expires, media_id=f"fake-{file_name}")

    async def media_info(self, media_id: str) -> MediaInfo:
        return MediaInfo(self.name, media_id, MediaStatus.READY, title="fake", duration=42)

    async def play_url(
        self,
        media: str,
        *,
        preview_seconds: int | None = None,
        ttl: int | None = None,
        client_ip: str | None = None,
    ) -> SignedUrl:
        expires = datetime.now(UTC) + timedelta(seconds=ttl or 600)
        return SignedUrl(f"{self.config.cdn}/{media}.mp4", expires, self.name, preview_seconds)

    async def parse_callback(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str] | None = None
    ) -> VodEvent | None:
        token = (query or {}).get("token", "")
        if not hmac.compare_digest(token, self.config.callback_token.get_secret_value()):
            raise CallbackRejected("回调令牌无效")
        data: dict[str, Any] = json.loads(body)
        return VodEvent(
            provider=self.name,
            kind=VodEventKind.UPLOAD_FINISHED,
            media_id=str(data["media_id"]),
            event_id=str(data["event_id"]),
            provider_event="Uploaded",
            duration=42,
            raw=data,
        )


class FakeVodSandbox:
    """The stand-in: nothing to serve, but it must be started and configure the port."""

    running: ClassVar[list[FakeVodSandbox]] = []

    def start(self) -> FakeVodSandbox:
        FakeVodSandbox.running.append(self)
        return self

    def stop(self) -> None:
        FakeVodSandbox.running.remove(self)

    def sandbox_config(self, service_url: str) -> FakeVodConfig:
        return FakeVodConfig(
            cdn=f"{service_url}/fake-cdn", callback_token=SecretStr("sandbox-token")
        )


SPEC = ProviderSpec(FakeVodProvider, FakeVodConfig, f"{__name__}:FakeVodSandbox")
