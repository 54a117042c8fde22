"""The one interface the service talks to, whatever the VOD provider.

Providers run their blocking SDK calls in a worker thread, so every method is safe
to await from request handlers. Errors leave as luser_common ``AppError``s:

- the provider refused or failed (any provider error code, HTTP 5xx from its API)
  -> ``ExternalServiceError`` (502), ``details = {"provider", "code", "request_id"}``;
- the provider could not be reached (connection refused, DNS, timeout)
  -> ``NetworkError`` (503, retryable), same ``details``;
- the media id does not exist at the provider -> ``NotFound`` (404);
- settings needed for the operation are missing -> ``ConfigError``;
- a callback that fails authentication -> ``CallbackRejected`` (403),
  a malformed authentic one -> ``DeserializationError`` (400).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from luser_common import BadRequest, Forbidden

__all__ = [
    "CallbackRejected",
    "MediaInfo",
    "MediaStatus",
    "PulledEvent",
    "SignedUrl",
    "TranscodeTask",
    "UnsupportedOperation",
    "UploadCredentials",
    "VodEvent",
    "VodEventKind",
    "VodProvider",
]


class CallbackRejected(Forbidden):
    """A provider callback failed authentication (bad token or signature, stale timestamp)."""

    code = "VOD_CALLBACK_REJECTED"
    default_message = "回调请求校验失败"


class MediaStatus(StrEnum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"


class VodEventKind(StrEnum):
    UPLOAD_FINISHED = "upload_finished"
    UPLOAD_FAILED = "upload_failed"
    TRANSCODE_FINISHED = "transcode_finished"
    TRANSCODE_FAILED = "transcode_failed"


@dataclass(frozen=True, slots=True)
class UploadCredentials:
    """What the admin client needs to upload one file straight to the provider.

    Tencent: ``signature`` for the upload SDKs; the media id is only known after the
    upload (``NewFileUpload`` event, linked back through ``source_context``).
    Aliyun: ``media_id`` (VideoId) up front, ``upload_address`` / ``upload_auth``
    (base64 JSON) for the OSS upload SDKs.
    ``upload_url``: where the file goes when that is not the SDKs' fixed address (the
    sandbox's upload target); None for the real providers.
    """

    provider: str
    expires_at: datetime
    media_id: str | None = None
    signature: str | None = None
    upload_address: str | None = None
    upload_auth: str | None = None
    upload_url: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A media file as the provider describes it now."""

    provider: str
    media_id: str
    status: MediaStatus
    provider_status: str | None = None
    title: str | None = None
    duration: float | None = None
    cover_url: str | None = None
    play_source: str | None = None  # unsigned URL ``play_url`` can sign without an API call
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A playable, expiring URL.

    ``preview_seconds`` is set for a preview play; ``preview_enforced`` says whether
    the provider's CDN cuts the stream at that point (False: only the short lifetime
    limits it).
    """

    url: str
    expires_at: datetime
    provider: str
    preview_seconds: int | None = None
    preview_enforced: bool = True

    @property
    def preview(self) -> bool:
        return self.preview_seconds is not None


@dataclass(frozen=True, slots=True)
class VodEvent:
    """A provider callback, normalised. ``event_id`` is stable across redeliveries."""

    provider: str
    kind: VodEventKind
    media_id: str
    event_id: str
    provider_event: str
    duration: float | None = None
    cover_url: str | None = None
    play_url: str | None = None
    source_context: str | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TranscodeTask:
    """A transcoding job the provider accepted; its result arrives as an event."""

    provider: str
    media_id: str
    task_id: str
    template: str


@dataclass(frozen=True, slots=True)
class PulledEvent:
    """An event taken from a provider's reliable queue (Tencent PullEvents).

    ``handle`` confirms it (ConfirmEvents); until then the provider hands it out
    again. ``event`` is None for authentic events the service ignores.
    """

    handle: str
    event: VodEvent | None


class VodProvider(ABC):
    """Upload credentials, media info, signed play URLs and callbacks for one provider."""

    name: ClassVar[str]

    @abstractmethod
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
        """Credentials for one client-side upload. ``source_context`` (e.g. our video id,
        at most 250 bytes) comes back in the upload-finished event."""

    @abstractmethod
    async def media_info(self, media_id: str) -> MediaInfo:
        """Refresh title, duration, cover and status from the provider."""

    @abstractmethod
    async def play_url(
        self,
        media: str,
        *,
        preview_seconds: int | None = None,
        ttl: int | None = None,
        client_ip: str | None = None,
    ) -> SignedUrl:
        """A signed URL for a media id, or for an unsigned URL (``MediaInfo.play_source``).

        ``preview_seconds`` limits playback to the first seconds; ``ttl`` defaults to the
        provider's ``play_url_ttl_seconds``. ``client_ip`` is accepted for providers that
        bind URLs to an address; neither Tencent Key nor Aliyun type A does.
        """

    @abstractmethod
    async def parse_callback(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> VodEvent | None:
        """Authenticate and normalise a callback; None for authentic events we ignore."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release SDK resources."""

    # -- lifecycle: optional, a provider without them refuses with a clear error ------

    async def delete_media(self, media_id: str) -> bool:
        """Delete the media and every rendition at the provider.

        True when deleted, False when the provider does not know the id (already
        gone: the caller treats that as done). Failures raise as described above.
        """
        raise _unsupported(self.name, "delete_media")

    async def transcode(self, media_id: str, template: str) -> TranscodeTask:
        """Start transcoding ``media_id`` with ``template`` (Tencent: a transcode
        template definition number; Aliyun: a template group id)."""
        raise _unsupported(self.name, "transcode")

    async def renew_upload_credentials(
        self,
        media_id: str | None,
        title: str,
        file_name: str,
        *,
        source_context: str | None = None,
    ) -> UploadCredentials:
        """Fresh credentials for an upload whose credentials expired (same media id
        where the provider assigns it up front)."""
        raise _unsupported(self.name, "renew_upload_credentials")

    async def pull_events(self) -> list[PulledEvent]:
        """Events waiting in the provider's reliable queue (may be empty)."""
        raise _unsupported(self.name, "pull_events")

    async def confirm_events(self, handles: list[str]) -> None:
        """Acknowledge pulled events so the provider stops handing them out."""
        raise _unsupported(self.name, "confirm_events")


class UnsupportedOperation(BadRequest):
    """The video's provider has no such operation (e.g. event pulling on Aliyun)."""

    code = "VOD_OPERATION_UNSUPPORTED"
    default_message = "点播服务商不支持此操作"


def _unsupported(provider: str, operation: str) -> UnsupportedOperation:
    return UnsupportedOperation(
        f"点播服务商 {provider} 不支持此操作: {operation}",
        details={"provider": provider, "operation": operation},
    )
