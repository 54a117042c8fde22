"""Aliyun ApsaraVideo VOD (``alibabacloud-vod20170321``).

Play URLs:
- for a VideoId, ``GetPlayInfo`` returns URLs the service already signed
  (``AuthTimeout`` = ttl); a preview passes ``PlayConfig={"PreviewTime": "<s>"}``, which
  the CDN enforces when the domain has URL authentication type A and the preview
  feature switched on (Aliyun "Configure the preview feature");
- for a plain URL, type-A signing happens locally. Such a URL cannot carry a
  preview limit: a preview gets a lifetime of ``max(60, preview_seconds)`` and
  ``preview_enforced=False``.
  Type A expires at ``timestamp + validity set in the console``; the provider
  treats ``play_url_ttl_seconds`` as that console validity and back-dates the
  timestamp for shorter lifetimes.

Callbacks: HTTP callback authentication, ``X-VOD-SIGNATURE =
md5("{callback_url}|{X-VOD-TIMESTAMP}|{callback_private_key}")``; timestamps further
than ``callback_max_age_seconds`` from now are rejected. The signature does not
cover the body, so the catalog should confirm state with ``media_info`` before
acting on anything irreversible.
"""

from __future__ import annotations

import base64
import hmac
import json
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_vod20170321 import models as vod_models
from alibabacloud_vod20170321.client import Client
from darabonba.exceptions import RetryError
from requests import RequestException
from Tea.exceptions import TeaException, UnretryableException

from app.settings import AliyunVodConfig
from app.vod import _common as c
from app.vod.base import (
    CallbackRejected,
    MediaInfo,
    MediaStatus,
    SignedUrl,
    TranscodeTask,
    UploadCredentials,
    VodEvent,
    VodEventKind,
    VodProvider,
)
from app.vod.signing import aliyun_auth_a_url, aliyun_callback_signature
from luser_common import AppError, DeserializationError

__all__ = ["AliyunVodProvider"]

_NOT_FOUND_CODES = {"InvalidVideo.NotFound"}
_STATUS = {
    "Uploading": MediaStatus.UPLOADING,
    "UploadSucc": MediaStatus.PROCESSING,
    "Transcoding": MediaStatus.PROCESSING,
    "Checking": MediaStatus.PROCESSING,
    "Normal": MediaStatus.READY,
    "UploadFail": MediaStatus.FAILED,
    "TranscodeFail": MediaStatus.FAILED,
    "ProduceFail": MediaStatus.FAILED,
    "Blocked": MediaStatus.BLOCKED,
}
# darabonba wraps transport failures of its requests session in RetryError.
_TRANSPORT_ERRORS = (RetryError, RequestException, OSError)
# Aliyun documents upload credentials as valid for 3000 seconds.
_UPLOAD_AUTH_SECONDS = 3000


class AliyunVodProvider(VodProvider):
    name: ClassVar[str] = "aliyun"

    def __init__(self, config: AliyunVodConfig) -> None:
        self.config = config
        self._client: Client | None = None

    # -- API calls ------------------------------------------------------------------

    def _sdk(self) -> Client:
        if self._client is None:
            cfg = self.config
            secret = cfg.access_key_secret.get_secret_value()
            if not cfg.access_key_id or not secret:
                raise c.missing_setting(self.name, "access_key_id / access_key_secret")
            timeout_ms = int(cfg.timeout_seconds * 1000)
            self._client = Client(
                open_api_models.Config(
                    access_key_id=cfg.access_key_id,
                    access_key_secret=secret,
                    region_id=cfg.region_id,
                    endpoint=cfg.endpoint,
                    protocol=cfg.protocol,
                    read_timeout=timeout_ms,
                    connect_timeout=timeout_ms,
                )
            )
        return self._client

    def _call_sync(self, call: Callable[[Client], Any], media_id: str | None) -> dict[str, Any]:
        client = self._sdk()
        try:
            response = call(client)
        except UnretryableException as exc:
            inner = exc.inner_exception
            if isinstance(inner, _TRANSPORT_ERRORS):  # connection refused, DNS, timeouts
                raise c.unreachable(self.name, type(inner).__name__) from exc
            # The API answered something the SDK cannot read (e.g. an HTML error page).
            raise c.provider_error(self.name, "InvalidResponse") from exc
        except TeaException as exc:
            raise self._translate(exc, media_id) from exc
        except _TRANSPORT_ERRORS as exc:
            raise c.unreachable(self.name, type(exc).__name__) from exc
        body = getattr(response, "body", None)
        data = body.to_map() if body is not None else None
        if not isinstance(data, dict):
            raise c.provider_error(self.name, "InvalidResponse")
        return data

    async def _call(
        self, call: Callable[[Client], Any], media_id: str | None = None
    ) -> dict[str, Any]:
        return await c.run_blocking(self._call_sync, call, media_id)

    def _translate(self, exc: TeaException, media_id: str | None) -> AppError:
        code = str(getattr(exc, "code", None) or "")
        if not code:
            status = getattr(exc, "status_code", None)
            code = f"HTTP{status}" if status else type(exc).__name__
        if code in _NOT_FOUND_CODES and media_id is not None:
            return c.media_not_found(self.name, media_id, code)
        message = str(getattr(exc, "message", "") or "")
        return c.provider_error(self.name, code, message, getattr(exc, "request_id", None))

    # -- VodProvider ----------------------------------------------------------------

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
        request = vod_models.CreateUploadVideoRequest(
            title=title,
            file_name=file_name,
            description=description,
            cate_id=category_id,
            template_group_id=self.config.template_group_id or None,
            user_data=json.dumps({"Extend": {"context": source_context}})
            if source_context
            else None,
        )
        issued = c.now()
        data = await self._call(lambda client: client.create_upload_video(request))
        address, auth = data.get("UploadAddress"), data.get("UploadAuth")
        if not data.get("VideoId") or not address or not auth:
            raise c.provider_error(self.name, "InvalidResponse", "", data.get("RequestId"))
        return UploadCredentials(
            provider=self.name,
            expires_at=_auth_expiry(str(auth)) or c.utc(issued + _UPLOAD_AUTH_SECONDS),
            media_id=str(data["VideoId"]),
            upload_address=str(address),
            upload_auth=str(auth),
            request_id=data.get("RequestId"),
        )

    async def media_info(self, media_id: str) -> MediaInfo:
        request = vod_models.GetVideoInfoRequest(video_id=media_id)
        data = await self._call(lambda client: client.get_video_info(request), media_id)
        video = c.as_dict(data.get("Video"))
        status = str(video.get("Status") or "")
        return MediaInfo(
            provider=self.name,
            media_id=media_id,
            status=_STATUS.get(status, MediaStatus.UNKNOWN),
            provider_status=status or None,
            title=video.get("Title"),
            duration=c.as_float(video.get("Duration")),
            cover_url=video.get("CoverURL") or None,
            raw=data,
        )

    async def play_url(
        self,
        media: str,
        *,
        preview_seconds: int | None = None,
        ttl: int | None = None,
        client_ip: str | None = None,
    ) -> SignedUrl:
        ttl = ttl or self.config.play_url_ttl_seconds
        if media.startswith(("http://", "https://")):
            return self._sign_url(media, preview_seconds, ttl)
        return await self._play_info(media, preview_seconds, ttl)

    async def delete_media(self, media_id: str) -> bool:
        request = vod_models.DeleteVideoRequest(video_ids=media_id)
        data = await self._call(lambda client: client.delete_video(request), media_id)
        if media_id in _id_list(data.get("ForbiddenVideoIds")):
            raise c.provider_error(self.name, "Forbidden.DeleteVideo", "", data.get("RequestId"))
        return media_id not in _id_list(data.get("NonExistVideoIds"))

    async def transcode(self, media_id: str, template: str) -> TranscodeTask:
        request = vod_models.SubmitTranscodeJobsRequest(
            video_id=media_id, template_group_id=template
        )
        data = await self._call(lambda client: client.submit_transcode_jobs(request), media_id)
        task_id = str(data.get("TranscodeTaskId") or "")
        if not task_id:
            raise c.provider_error(self.name, "InvalidResponse", "", data.get("RequestId"))
        return TranscodeTask(self.name, media_id, task_id, template)

    async def renew_upload_credentials(
        self,
        media_id: str | None,
        title: str,
        file_name: str,
        *,
        source_context: str | None = None,
    ) -> UploadCredentials:
        if not media_id:  # nothing was created yet: a first upload, not a renewal
            return await self.upload_credentials(title, file_name, source_context=source_context)
        request = vod_models.RefreshUploadVideoRequest(video_id=media_id)
        issued = c.now()
        data = await self._call(lambda client: client.refresh_upload_video(request), media_id)
        address, auth = data.get("UploadAddress"), data.get("UploadAuth")
        if not address or not auth:
            raise c.provider_error(self.name, "InvalidResponse", "", data.get("RequestId"))
        return UploadCredentials(
            provider=self.name,
            expires_at=_auth_expiry(str(auth)) or c.utc(issued + _UPLOAD_AUTH_SECONDS),
            media_id=media_id,
            upload_address=str(address),
            upload_auth=str(auth),
            request_id=data.get("RequestId"),
        )

    async def _play_info(self, media_id: str, preview_seconds: int | None, ttl: int) -> SignedUrl:
        play_config: dict[str, str] = {}
        if preview_seconds is not None:
            play_config["PreviewTime"] = str(preview_seconds)
        if self.config.play_domain:
            play_config["PlayDomain"] = self.config.play_domain
        request = vod_models.GetPlayInfoRequest(
            video_id=media_id,
            auth_timeout=ttl,
            play_config=json.dumps(play_config) if play_config else None,
        )
        issued = c.now()
        data = await self._call(lambda client: client.get_play_info(request), media_id)
        url = _best_play_url(data)
        if url is None:
            raise c.provider_error(self.name, "NoPlayableStream", "", data.get("RequestId"))
        return SignedUrl(
            url=url,
            expires_at=c.utc(issued + ttl),
            provider=self.name,
            preview_seconds=preview_seconds,
        )

    def _sign_url(self, url: str, preview_seconds: int | None, ttl: int) -> SignedUrl:
        cfg = self.config
        key = cfg.url_auth_key.get_secret_value()
        if preview_seconds is not None:
            ttl = min(ttl, max(60, preview_seconds))
        issued = int(c.now())
        if cfg.play_domain:
            url = urllib.parse.urlsplit(url)._replace(netloc=cfg.play_domain).geturl()
        if key:
            url = aliyun_auth_a_url(url, key, timestamp=issued + ttl - cfg.play_url_ttl_seconds)
        elif preview_seconds is not None:
            raise c.missing_setting(self.name, "url_auth_key")
        return SignedUrl(
            url=url,
            expires_at=c.utc(issued + ttl),
            provider=self.name,
            preview_seconds=preview_seconds,
            preview_enforced=preview_seconds is None,
        )

    async def parse_callback(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> VodEvent | None:
        self._verify(c.lower_headers(headers))
        return _event(c.json_object(body))

    def _verify(self, headers: dict[str, str]) -> None:
        cfg = self.config
        key = cfg.callback_private_key.get_secret_value()
        if not key or not cfg.callback_url:
            raise c.missing_setting(self.name, "callback_private_key / callback_url")
        timestamp = headers.get("x-vod-timestamp", "")
        signature = headers.get("x-vod-signature", "")
        if not timestamp.isdigit() or not signature:
            raise CallbackRejected("回调缺少签名")
        if abs(c.now() - int(timestamp)) > cfg.callback_max_age_seconds:
            raise CallbackRejected("回调时间戳已过期")
        expected = aliyun_callback_signature(cfg.callback_url, timestamp, key)
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise CallbackRejected("回调签名无效")


# -- helpers --------------------------------------------------------------------------


def _id_list(value: Any) -> list[str]:
    """Aliyun answers id lists as JSON arrays or comma-separated strings."""
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in c.as_list(value)]


def _auth_expiry(upload_auth: str) -> datetime | None:
    """``ExpireUTCTime`` from the base64 JSON UploadAuth, when readable."""
    try:
        decoded = json.loads(base64.b64decode(upload_auth))
        return datetime.fromisoformat(str(decoded["ExpireUTCTime"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return None


def _best_play_url(data: dict[str, Any]) -> str | None:
    """The highest-bitrate stream in ``PlayInfoList`` that is not marked abnormal."""
    infos = c.as_list(c.as_dict(data.get("PlayInfoList")).get("PlayInfo"))
    usable = [
        i
        for i in infos
        if isinstance(i, dict) and i.get("PlayURL") and i.get("Status", "Normal") == "Normal"
    ]
    if not usable:
        return None
    return str(max(usable, key=lambda i: c.as_float(i.get("Bitrate")) or 0)["PlayURL"])


def _event(data: dict[str, Any]) -> VodEvent | None:
    event_type = str(data.get("EventType") or "")
    success = str(data.get("Status") or "").lower() == "success"
    if event_type == "FileUploadComplete":
        kind = VodEventKind.UPLOAD_FINISHED if success else VodEventKind.UPLOAD_FAILED
        return _new_event(data, kind, context=_extend_context(data.get("Extend")))
    if event_type == "TranscodeComplete":
        streams = [
            s
            for s in c.as_list(data.get("StreamInfos"))
            if isinstance(s, dict) and str(s.get("Status")).lower() == "success"
        ]
        if not success:
            return _new_event(data, VodEventKind.TRANSCODE_FAILED)
        durations = [d for d in (c.as_float(s.get("Duration")) for s in streams) if d]
        best = max(streams, key=lambda s: c.as_float(s.get("Bitrate")) or 0, default={})
        return _new_event(
            data,
            VodEventKind.TRANSCODE_FINISHED,
            duration=max(durations, default=None),
            play_url=best.get("FileUrl"),
        )
    if event_type == "StreamTranscodeComplete" and success:
        # One stream is ready, so the video can play; the overall verdict comes with
        # TranscodeComplete, hence a failed single stream is ignored here.
        return _new_event(
            data,
            VodEventKind.TRANSCODE_FINISHED,
            duration=c.as_float(data.get("Duration")),
            play_url=data.get("FileUrl"),
        )
    return None


def _new_event(
    data: dict[str, Any],
    kind: VodEventKind,
    *,
    context: str | None = None,
    duration: float | None = None,
    play_url: Any = None,
) -> VodEvent:
    video_id = data.get("VideoId")
    if not isinstance(video_id, str) or not video_id:
        raise DeserializationError("回调缺少 VideoId")
    event_type = str(data["EventType"])
    discriminator = str(data.get("JobId") or data.get("EventTime") or "")
    failed = kind in (VodEventKind.UPLOAD_FAILED, VodEventKind.TRANSCODE_FAILED)
    return VodEvent(
        provider="aliyun",
        kind=kind,
        media_id=video_id,
        event_id=f"aliyun:{event_type}:{video_id}:{discriminator}",
        provider_event=event_type,
        duration=duration,
        cover_url=data.get("CoverUrl") or None,
        play_url=str(play_url) if play_url else None,
        source_context=context,
        error=f"{data.get('ErrorCode') or 'fail'}: {data.get('ErrorMessage') or ''}"
        if failed
        else None,
        raw=data,
    )


def _extend_context(extend: Any) -> str | None:
    """Our ``source_context`` back from ``UserData.Extend`` (a dict or its JSON text)."""
    if isinstance(extend, str):
        try:
            extend = json.loads(extend)
        except ValueError:
            return None
    value = c.as_dict(extend).get("context")
    return str(value) if value is not None else None
