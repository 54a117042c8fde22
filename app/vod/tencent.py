"""Tencent Cloud VOD (``tencentcloud-sdk-python-vod``).

API calls go through ``VodClient.call_json`` and the provider checks the reply's
``Response.Error`` itself: the SDK only raises for error replies whose Content-Type
is exactly ``application/json`` (verified against the SDK), so a gateway answering
``application/json; charset=utf-8`` would otherwise pass an error off as success.

Reliable callbacks (``vod.tencent.event_mode = "pull"``): ``PullEvents`` hands out
waiting events, each with an ``EventHandle``; an event not confirmed with
``ConfirmEvents`` is handed out again later, so the caller applies it exactly once
by its ``event_id`` and confirms only after the apply committed.

Callbacks: classic VOD event notifications carry no signature, so the callback URL
configured at Tencent must hold a shared secret, ``...?token=<vod.tencent.callback_token>``,
compared in constant time. Events have no timestamp to check; redeliveries are
made harmless by the stable ``event_id``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vod.v20180717 import vod_client

from app.settings import TencentVodConfig
from app.vod import _common as c
from app.vod.base import (
    CallbackRejected,
    MediaInfo,
    MediaStatus,
    PulledEvent,
    SignedUrl,
    TranscodeTask,
    UploadCredentials,
    VodEvent,
    VodEventKind,
    VodProvider,
)
from app.vod.signing import tencent_key_url, tencent_upload_signature
from luser_common import AppError, DeserializationError, NotFound, ValidationError

__all__ = ["TencentVodProvider"]

_MAX_SOURCE_CONTEXT = 250  # bytes, Tencent's limit for sourceContext
_NOT_FOUND_CODES = {"ResourceNotFound.FileNotExist", "ResourceNotFound.FileNotFound"}
_STATUS = {
    "Normal": MediaStatus.READY,
    "SystemForbidden": MediaStatus.BLOCKED,
    "Forbidden": MediaStatus.BLOCKED,
}


class TencentVodProvider(VodProvider):
    name: ClassVar[str] = "tencent"
    CALLBACK_TOKEN_PARAM: ClassVar[str] = "token"

    def __init__(self, config: TencentVodConfig) -> None:
        self.config = config
        self._client: vod_client.VodClient | None = None

    # -- API calls ------------------------------------------------------------------

    def _sdk(self) -> vod_client.VodClient:
        if self._client is None:
            cfg = self.config
            try:
                cred = credential.Credential(cfg.secret_id, cfg.secret_key.get_secret_value())
            except TencentCloudSDKException as exc:
                raise c.missing_setting(self.name, "secret_id / secret_key") from exc
            http = HttpProfile(
                protocol=cfg.protocol, endpoint=cfg.endpoint, reqTimeout=cfg.timeout_seconds
            )
            self._client = vod_client.VodClient(cred, cfg.region, ClientProfile(httpProfile=http))
            _skip_environment_scan(self._client)
        return self._client

    def _call_sync(
        self, action: str, params: dict[str, Any], media_id: str | None = None
    ) -> dict[str, Any]:
        if self.config.sub_app_id:
            params = {**params, "SubAppId": self.config.sub_app_id}
        try:
            data = self._sdk().call_json(action, params)
        except TencentCloudSDKException as exc:
            raise self._translate(exc, media_id) from exc
        except (ValueError, KeyError) as exc:  # a non-JSON body (proxy page, truncated reply)
            raise c.provider_error(self.name, "InvalidResponse", str(exc)) from exc
        response = c.as_dict(data.get("Response") if isinstance(data, dict) else None)
        error = c.as_dict(response.get("Error"))
        if error or not response:
            code = str(error.get("Code") or "InvalidResponse")
            if code in _NOT_FOUND_CODES and media_id is not None:
                raise c.media_not_found(self.name, media_id, code)
            raise c.provider_error(
                self.name, code, str(error.get("Message") or ""), response.get("RequestId")
            )
        return response

    async def _call(
        self, action: str, params: dict[str, Any], media_id: str | None = None
    ) -> dict[str, Any]:
        return await c.run_blocking(self._call_sync, action, params, media_id)

    def _translate(self, exc: TencentCloudSDKException, media_id: str | None) -> AppError:
        code = exc.get_code() or "Unknown"
        if code in _NOT_FOUND_CODES and media_id is not None:
            return c.media_not_found(self.name, media_id, code)
        if code == "ClientNetworkError":  # connection refused, DNS, timeouts
            return c.unreachable(self.name, code)
        if code == "ServerNetworkError":  # non-200 HTTP: the message is the raw body
            return c.provider_error(self.name, code)
        return c.provider_error(self.name, code, str(exc.get_message() or ""), exc.get_request_id())

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
        cfg = self.config
        secret_key = cfg.secret_key.get_secret_value()
        if not cfg.secret_id or not secret_key:
            raise c.missing_setting(self.name, "secret_id / secret_key")
        if source_context and len(source_context.encode("utf-8")) > _MAX_SOURCE_CONTEXT:
            raise ValidationError("上传上下文过长", field="source_context")
        issued = int(c.now())
        ttl = ttl or cfg.upload_signature_ttl_seconds
        signature = tencent_upload_signature(
            cfg.secret_id,
            secret_key,
            now=issued,
            ttl=ttl,
            random_value=secrets.randbelow(2**32),
            procedure=cfg.procedure or None,
            class_id=category_id,
            sub_app_id=cfg.sub_app_id,
            source_context=source_context,
        )
        return UploadCredentials(
            provider=self.name,
            expires_at=c.utc(issued + ttl),
            signature=signature,
            upload_url=cfg.upload_url or None,
        )

    async def media_info(self, media_id: str) -> MediaInfo:
        response = await self._call("DescribeMediaInfos", {"FileIds": [media_id]}, media_id)
        found = [m for m in c.as_list(response.get("MediaInfoSet")) if isinstance(m, dict)]
        if media_id in c.as_list(response.get("NotExistFileIdSet")) or not found:
            raise c.media_not_found(self.name, media_id, "ResourceNotFound.FileNotExist")
        return self._media(found[0], media_id)

    def _media(self, item: dict[str, Any], media_id: str) -> MediaInfo:
        basic = c.as_dict(item.get("BasicInfo"))
        meta = c.as_dict(item.get("MetaData"))
        status = str(basic.get("Status") or "Normal")
        return MediaInfo(
            provider=self.name,
            media_id=media_id,
            status=_STATUS.get(status, MediaStatus.UNKNOWN),
            provider_status=status,
            title=basic.get("Name"),
            duration=c.as_float(meta.get("Duration")),
            cover_url=basic.get("CoverUrl") or None,
            play_source=_best_play_source(item),
            raw=item,
        )

    async def play_url(
        self,
        media: str,
        *,
        preview_seconds: int | None = None,
        ttl: int | None = None,
        client_ip: str | None = None,
    ) -> SignedUrl:
        cfg = self.config
        key = cfg.play_key.get_secret_value()
        if preview_seconds is not None and not key:
            raise c.missing_setting(self.name, "play_key")
        source = media if _is_url(media) else await self._play_source(media)
        source = _with_domain(source, cfg.play_domain)
        ttl = ttl or cfg.play_url_ttl_seconds
        expires = int(c.now()) + ttl
        if not key:  # domain without hotlink protection: the plain URL is what plays
            return SignedUrl(url=source, expires_at=c.utc(expires), provider=self.name)
        url = tencent_key_url(
            source,
            key,
            expires_at=expires,
            us=secrets.token_hex(5),
            exper=preview_seconds,
            rlimit=cfg.play_rlimit or None,
        )
        return SignedUrl(
            url=url, expires_at=c.utc(expires), provider=self.name, preview_seconds=preview_seconds
        )

    async def _play_source(self, media_id: str) -> str:
        info = await self.media_info(media_id)
        if not info.play_source:
            raise c.provider_error(self.name, "NoPlayableStream", f"media {media_id} has no URL")
        return info.play_source

    async def delete_media(self, media_id: str) -> bool:
        try:
            await self._call("DeleteMedia", {"FileId": media_id}, media_id)
        except NotFound:
            return False
        return True

    async def transcode(self, media_id: str, template: str) -> TranscodeTask:
        if not template.isdigit():
            raise ValidationError("腾讯云转码模板应为模板编号 (数字)", field="template")
        task = {"TranscodeTaskSet": [{"Definition": int(template)}]}
        params = {"FileId": media_id, "MediaProcessTask": task}
        response = await self._call("ProcessMedia", params, media_id)
        task_id = str(response.get("TaskId") or "")
        if not task_id:
            raise c.provider_error(self.name, "InvalidResponse", "", response.get("RequestId"))
        return TranscodeTask(self.name, media_id, task_id, template)

    async def renew_upload_credentials(
        self,
        media_id: str | None,
        title: str,
        file_name: str,
        *,
        source_context: str | None = None,
    ) -> UploadCredentials:
        # A Tencent upload signature is computed locally: renewing is signing again.
        return await self.upload_credentials(title, file_name, source_context=source_context)

    async def pull_events(self) -> list[PulledEvent]:
        response = await self._call("PullEvents", {})
        pulled = []
        for item in c.as_list(response.get("EventSet")):
            data = c.as_dict(item)
            handle = str(data.get("EventHandle") or "")
            if handle:
                pulled.append(PulledEvent(handle, _event(data)))
        return pulled

    async def confirm_events(self, handles: list[str]) -> None:
        if handles:
            await self._call("ConfirmEvents", {"EventHandles": handles})

    async def parse_callback(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> VodEvent | None:
        if self.config.event_mode == "pull":
            raise CallbackRejected("腾讯云点播事件已改为可靠回调 (PullEvents), 不接受 HTTP 回调")
        expected = self.config.callback_token.get_secret_value()
        if not expected:
            raise c.missing_setting(self.name, "callback_token")
        given = (query or {}).get(self.CALLBACK_TOKEN_PARAM, "")
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            raise CallbackRejected("回调令牌无效")
        return _event(c.json_object(body))


# -- callbacks ------------------------------------------------------------------------


def _skip_environment_scan(client: vod_client.VodClient) -> None:
    """Stop requests re-reading proxy settings from the environment on every call.

    With no proxy variable set there is nothing to find, yet requests scans the whole
    environment twice per call (a fifth of a call's CPU, measured). The SDK reads the
    proxy variables itself when the client is built and passes its CA bundle
    explicitly, so only this scan goes. Best effort: other SDK versions may differ.
    """
    if any(name.lower().endswith("_proxy") for name in os.environ):
        return
    session = getattr(getattr(client.request, "conn", None), "_session", None)
    if isinstance(session, requests.Session):
        session.trust_env = False


def _event(data: dict[str, Any]) -> VodEvent | None:
    event_type = str(data.get("EventType") or "")
    if event_type == "NewFileUpload":
        return _upload_event(data, c.as_dict(data.get("FileUploadEvent")))
    if event_type == "ProcedureStateChanged":
        return _procedure_event(data, c.as_dict(data.get("ProcedureStateChangeEvent")))
    if event_type == "TranscodeComplete":
        return _transcode_event(data, c.as_dict(data.get("TranscodeCompleteEvent")))
    return None


def _require_file_id(task: dict[str, Any]) -> str:
    file_id = task.get("FileId")
    if not isinstance(file_id, str | int) or not str(file_id):
        raise DeserializationError("回调缺少 FileId")
    return str(file_id)


def _new_event(
    data: dict[str, Any], kind: VodEventKind, file_id: str, discriminator: str, **fields: Any
) -> VodEvent:
    event_type = str(data["EventType"])
    return VodEvent(
        provider="tencent",
        kind=kind,
        media_id=file_id,
        event_id=f"tencent:{event_type}:{file_id}:{discriminator}",
        provider_event=event_type,
        raw=data,
        **fields,
    )


def _upload_event(data: dict[str, Any], task: dict[str, Any]) -> VodEvent:
    basic = c.as_dict(task.get("MediaBasicInfo"))
    source = c.as_dict(basic.get("SourceInfo"))
    return _new_event(
        data,
        VodEventKind.UPLOAD_FINISHED,
        _require_file_id(task),
        "",  # a FileId is uploaded exactly once
        duration=c.as_float(c.as_dict(task.get("MetaData")).get("Duration")),
        cover_url=basic.get("CoverUrl") or None,
        play_url=basic.get("MediaUrl") or None,
        source_context=source.get("SourceContext") or None,
    )


def _procedure_event(data: dict[str, Any], task: dict[str, Any]) -> VodEvent | None:
    if task.get("Status") != "FINISH":
        return None
    results = [r for r in c.as_list(task.get("MediaProcessResultSet")) if isinstance(r, dict)]
    outputs = [o for o in map(_stream_output, results) if o is not None]
    streams = [r for r in results if r.get("Type") in ("Transcode", "AdaptiveDynamicStreaming")]
    failed = _err_code(task) != 0 or (bool(streams) and not outputs)
    return _new_event(
        data,
        VodEventKind.TRANSCODE_FAILED if failed else VodEventKind.TRANSCODE_FINISHED,
        _require_file_id(task),
        str(task.get("TaskId") or ""),
        duration=c.as_float(c.as_dict(task.get("MetaData")).get("Duration")),
        cover_url=_snapshot_cover(results),
        play_url=None if failed else (outputs[0] if outputs else task.get("FileUrl") or None),
        error=f"{task.get('ErrCode')}: {task.get('Message') or ''}" if failed else None,
    )


def _transcode_event(data: dict[str, Any], task: dict[str, Any]) -> VodEvent:
    failed = _err_code(task) != 0
    plays = [p for p in c.as_list(task.get("PlayInfoSet")) if isinstance(p, dict) and p.get("Url")]
    return _new_event(
        data,
        VodEventKind.TRANSCODE_FAILED if failed else VodEventKind.TRANSCODE_FINISHED,
        _require_file_id(task),
        str(task.get("TaskId") or ""),
        duration=c.as_float(task.get("Duration")),
        cover_url=task.get("CoverUrl") or None,
        play_url=None if failed or not plays else plays[-1]["Url"],
        error=f"{task.get('ErrCode')}: {task.get('Message') or ''}" if failed else None,
    )


def _err_code(task: dict[str, Any]) -> int:
    try:
        return int(task.get("ErrCode") or 0)
    except (TypeError, ValueError):
        return -1


def _stream_output(result: dict[str, Any]) -> str | None:
    """The output URL of a successful adaptive-streaming or transcode sub-task."""
    kind = result.get("Type")
    task_key = {
        "AdaptiveDynamicStreaming": "AdaptiveDynamicStreamingTask",
        "Transcode": "TranscodeTask",
    }.get(str(kind))
    task = c.as_dict(result.get(task_key)) if task_key else {}
    if task.get("Status") != "SUCCESS":
        return None
    url = c.as_dict(task.get("Output")).get("Url")
    return str(url) if url else None


def _snapshot_cover(results: list[dict[str, Any]]) -> str | None:
    for result in results:
        task = c.as_dict(result.get("CoverBySnapshotTask"))
        cover = c.as_dict(task.get("Output")).get("CoverUrl")
        if task.get("Status") == "SUCCESS" and cover:
            return str(cover)
    return None


# -- play sources ---------------------------------------------------------------------


def _best_play_source(item: dict[str, Any]) -> str | None:
    """Adaptive HLS first, then the highest-bitrate transcode, then the original file."""
    adaptive = c.as_list(
        c.as_dict(item.get("AdaptiveDynamicStreamingInfo")).get("StreamingInfoSet")
    )
    for stream in adaptive:
        if isinstance(stream, dict) and stream.get("Url"):
            return str(stream["Url"])
    transcodes = [
        t
        for t in c.as_list(c.as_dict(item.get("TranscodeInfo")).get("TranscodeSet"))
        if isinstance(t, dict) and t.get("Url") and t.get("Definition") != 0
    ]
    if transcodes:
        return str(max(transcodes, key=lambda t: c.as_float(t.get("Bitrate")) or 0)["Url"])
    url = c.as_dict(item.get("BasicInfo")).get("MediaUrl")
    return str(url) if url else None


def _is_url(media: str) -> bool:
    return media.startswith(("http://", "https://"))


def _with_domain(url: str, domain: str) -> str:
    if not domain:
        return url
    return urllib.parse.urlsplit(url)._replace(netloc=domain).geturl()
