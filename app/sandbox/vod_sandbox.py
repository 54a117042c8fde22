"""The VOD stand-ins in sandbox mode: every media id plays the shipped demo video.

They are the signature-checking test stubs of :mod:`app.sandbox.vod` plus what a
newcomer needs: an unknown media id (a seeded video, one an admin typed in) is
answered as the demo video instead of "not found", and the stub's own port serves
that video's bytes with Range support, as the provider's CDN would. Tencent play
URLs carry Key hotlink signatures, which the stand-in checks before serving.

They also accept uploads (:mod:`app.sandbox.vod_upload` says how each checks the
upload credentials the service hands out): the file is kept in memory, served as the
video's play URL, and the provider's signed "upload finished" callback is sent to the
service before the upload is answered, so the video is ready when the upload returns.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from app.sandbox.delivery import post
from app.sandbox.media import DEMO_DURATION_SECONDS, DEMO_VIDEO_PATH, demo_video, serve_bytes
from app.sandbox.vod import (
    AliyunVodStub,
    TencentVodStub,
    _b64json,
    _Reply,
    aliyun_callback,
    tencent_new_file_upload,
)
from app.sandbox.vod_upload import (
    UploadRefused,
    check_oss_put,
    check_tencent_signature,
    mp4_duration,
)
from app.settings import AliyunVodConfig, TencentVodConfig
from app.vod.signing import tencent_key_url

__all__ = ["OSS_BUCKET", "TENCENT_UPLOAD_PATH", "SandboxAliyunVod", "SandboxTencentVod"]

DEMO_COVER = "https://example.invalid/covers/sandbox.jpg"
TENCENT_UPLOAD_PATH = "/vod/upload"
UPLOAD_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "X-VOD-Signature, X-VOD-File-Name, Content-Type",
}
TENCENT_UPLOADED = "/vod/media/"  # where an uploaded file is served: <FileId>.mp4
OSS_BUCKET = "sandbox-vod"
UPLOAD_TTL_SECONDS = 3000  # what Aliyun documents for UploadAuth


def _media_reply(headers: dict[str, str], data: bytes | None = None) -> _Reply:
    reply = serve_bytes(demo_video() if data is None else data, headers.get("range"))
    return _Reply(reply.status, reply.body, "video/mp4", reply.headers)


def _refused(exc: UploadRefused) -> _Reply:
    body = json.dumps({"Code": exc.code, "Message": exc.message}, ensure_ascii=False)
    return _Reply(exc.status, body.encode())


def _uploaded(delivered: tuple[int, str], **fields: Any) -> _Reply:
    """The answer to an upload: what was stored and how the service took the callback."""
    status, reply = delivered
    callback = {"Status": status, "Reply": reply[:500]}
    return _Reply(200, json.dumps({**fields, "Callback": callback}, ensure_ascii=False).encode())


class SandboxTencentVod(TencentVodStub):
    """Tencent VOD API on 127.0.0.1 plus the demo video behind Key hotlink protection."""

    def __init__(self) -> None:
        super().__init__(secret_id="AKIDsandbox" + secrets.token_hex(8))
        self.secret_key = secrets.token_hex(16)
        self.play_key = secrets.token_hex(12)
        self.callback_token = secrets.token_hex(12)
        self.callback_url = ""
        self.uploads: dict[str, bytes] = {}  # FileId -> the uploaded MP4
        self._file_ids = itertools.count(5285890800000000 + secrets.randbelow(10**6) * 1000)

    @property
    def video_url(self) -> str:
        return f"http://{self.endpoint}{DEMO_VIDEO_PATH}"

    def sandbox_config(self, service_url: str) -> TencentVodConfig:
        """The ``[vod.tencent]`` section aimed at this stand-in."""
        # Tencent calls the callback URL configured in its console, token included.
        self.callback_url = f"{service_url}/api/vod/callbacks/tencent?token={self.callback_token}"
        return self.config(
            play_key=SecretStr(self.play_key),
            callback_token=SecretStr(self.callback_token),
            upload_url=f"http://{self.endpoint}{TENCENT_UPLOAD_PATH}",
        )

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        route = urllib.parse.urlsplit(path).path
        if method == "GET" and (route == DEMO_VIDEO_PATH or route.startswith(TENCENT_UPLOADED)):
            return self._serve_video(path, headers)
        if route == TENCENT_UPLOAD_PATH and method in ("POST", "OPTIONS"):
            # An operator's browser uploads from the service's origin: the signature, not
            # the origin, is what authorises an upload, so any origin may send one.
            reply = _Reply(204, b"") if method == "OPTIONS" else self._upload(headers, body)
            reply.headers.update(UPLOAD_CORS)
            return reply
        if headers.get("x-tc-action") == "DescribeMediaInfos":
            ids = json.loads(body or b"{}").get("FileIds") or []
            for media_id in (str(i) for i in ids):
                if media_id not in self.media:
                    self.add_media(
                        media_id,
                        name="沙箱演示视频",
                        duration=DEMO_DURATION_SECONDS,
                        cover_url=DEMO_COVER,
                        media_url=self.video_url,
                    )
        return super()._handle(method, path, headers, body)

    def _upload(self, headers: dict[str, str], body: bytes) -> _Reply:
        """One request for Tencent's ApplyUpload + COS PUT + CommitUpload: the signature
        in ``X-VOD-Signature``, the file as the body; then the NewFileUpload callback."""
        try:
            signed = check_tencent_signature(
                headers.get("x-vod-signature", ""),
                secret_id=self.secret_id,
                secret_key=self.secret_key,
            )
            duration = mp4_duration(body)
        except UploadRefused as exc:
            return _refused(exc)
        file_id = str(next(self._file_ids))
        media_url = f"http://{self.endpoint}{TENCENT_UPLOADED}{file_id}.mp4"
        name = urllib.parse.unquote(headers.get("x-vod-file-name", "")) or f"{file_id}.mp4"
        self.uploads[file_id] = body
        self.add_media(
            file_id, name=name, duration=duration, cover_url=DEMO_COVER, media_url=media_url
        )
        event = tencent_new_file_upload(
            file_id,
            duration=duration,
            media_url=media_url,
            cover_url=DEMO_COVER,
            source_context=signed.get("sourceContext"),
        )
        delivered = post(self.callback_url, event, {"Content-Type": "application/json"})
        return _uploaded(delivered, FileId=file_id, MediaUrl=media_url)

    def _serve_video(self, path: str, headers: dict[str, str]) -> _Reply:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        data = None
        if parts.path.startswith(TENCENT_UPLOADED):
            data = self.uploads.get(parts.path.removeprefix(TENCENT_UPLOADED).removesuffix(".mp4"))
            if data is None:
                return _Reply(404, b"no such file", "text/plain")
        try:
            expires = int(query.get("t", ""), 16)
            expected = tencent_key_url(
                f"http://{self.endpoint}{parts.path}",
                self.play_key,
                expires_at=expires,
                us=query.get("us", ""),
                exper=int(query["exper"]) if query.get("exper") else None,
                rlimit=int(query["rlimit"]) if query.get("rlimit") else None,
            )
        except ValueError:
            return _Reply(403, b"invalid play URL", "text/plain")
        sign = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(expected).query)).get("sign")
        if sign != query.get("sign") or expires < time.time():
            return _Reply(403, b"play URL signature invalid or expired", "text/plain")
        return _media_reply(headers, data)


@dataclass(frozen=True)
class _OssGrant:
    """The STS credentials handed out for one object (UploadAuth)."""

    video_id: str
    access_key_id: str
    access_key_secret: str
    security_token: str
    expires_at: float


class SandboxAliyunVod(AliyunVodStub):
    """Aliyun VOD API on 127.0.0.1 plus the demo video as every video's play URL; its
    UploadAddress points at the stand-in itself as the OSS endpoint."""

    def __init__(self) -> None:
        super().__init__(access_key_id="LTAIsandbox" + secrets.token_hex(8))
        self.access_key_secret = secrets.token_hex(16)
        self.callback_private_key = secrets.token_hex(12)
        self.callback_url = ""
        self.grants: dict[str, _OssGrant] = {}  # "/<bucket>/<object>" -> its credentials
        self.uploads: dict[str, bytes] = {}  # "/<bucket>/<object>" -> the uploaded MP4
        self.extends: dict[str, Any] = {}  # VideoId -> UserData.Extend of CreateUploadVideo

    @property
    def video_url(self) -> str:
        return f"http://{self.endpoint}{DEMO_VIDEO_PATH}"

    def sandbox_config(self, service_url: str) -> AliyunVodConfig:
        """The ``[vod.aliyun]`` section aimed at this stand-in."""
        self.callback_url = f"{service_url}/api/vod/callbacks/aliyun"
        return self.config(
            callback_private_key=SecretStr(self.callback_private_key),
            callback_url=self.callback_url,
        )

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urllib.parse.urlsplit(path)
        if method == "GET" and parts.path == DEMO_VIDEO_PATH:
            return _media_reply(headers)
        if parts.path.startswith(f"/{OSS_BUCKET}/"):
            if method == "PUT":
                return self._put(parts.path, headers, body)
            if method == "GET" and parts.path in self.uploads:
                return _media_reply(headers, self.uploads[parts.path])
            return _Reply(404, b'{"Code": "NoSuchKey"}')
        if headers.get("x-acs-action") == "CreateUploadVideo":
            return self._create_upload(method, path, headers, body)
        query = dict(urllib.parse.parse_qsl(parts.query))
        video_id = query.get("VideoId", "")
        if video_id and video_id not in self.videos:
            self._add_demo(video_id)
        return super()._handle(method, path, headers, body)

    def _create_upload(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> _Reply:
        reply = super()._handle(method, path, headers, body)
        if reply.status == 200:  # keep UserData.Extend for the callback, as Aliyun does
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
            video_id = json.loads(reply.body)["VideoId"]
            self.extends[video_id] = json.loads(query.get("UserData") or "{}").get("Extend")
        return reply

    def _upload_reply(self, video_id: str) -> _Reply:
        """UploadAddress = this stand-in as the OSS endpoint; UploadAuth = fresh STS
        credentials for that one object."""
        resource = f"/{OSS_BUCKET}/sv/{video_id}.mp4"
        grant = _OssGrant(
            video_id,
            "STS.sandbox" + secrets.token_hex(8),
            secrets.token_hex(16),
            secrets.token_urlsafe(24),
            time.time() + UPLOAD_TTL_SECONDS,
        )
        self.grants[resource] = grant
        expire = datetime.fromtimestamp(grant.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        address = {
            "Endpoint": f"http://{self.endpoint}",
            "Bucket": OSS_BUCKET,
            "FileName": resource.removeprefix(f"/{OSS_BUCKET}/"),
        }
        auth = {
            "AccessKeyId": grant.access_key_id,
            "AccessKeySecret": grant.access_key_secret,
            "SecurityToken": grant.security_token,
            "Expiration": str(UPLOAD_TTL_SECONDS),
            "ExpireUTCTime": expire,
            "Region": self.config().region_id,
        }
        return self._ok(
            {"VideoId": video_id, "UploadAddress": _b64json(address), "UploadAuth": _b64json(auth)}
        )

    def _put(self, resource: str, headers: dict[str, str], body: bytes) -> _Reply:
        """An OSS PutObject of the object an UploadAddress named; then the signed
        FileUploadComplete callback."""
        grant = self.grants.get(resource)
        try:
            if grant is None or grant.video_id not in self.videos:
                raise UploadRefused(403, "AccessDenied", "no upload credentials for this object")
            check_oss_put(
                headers,
                resource,
                access_key_id=grant.access_key_id,
                access_key_secret=grant.access_key_secret,
                security_token=grant.security_token,
                expires_at=grant.expires_at,
            )
            duration = mp4_duration(body)
        except UploadRefused as exc:
            return _refused(exc)
        self.uploads[resource] = body
        video = self.videos[grant.video_id]
        url = f"http://{self.endpoint}{resource}"
        self.add_video(
            grant.video_id,
            title=str(video.get("Title") or ""),
            duration=duration,
            cover_url=DEMO_COVER,
            play_urls={url: 800},
        )
        for info in self.play_infos[grant.video_id]:
            info["Format"] = "mp4"
        event: dict[str, Any] = {
            "EventType": "FileUploadComplete",
            "VideoId": grant.video_id,
            "Status": "success",
            "Size": len(body),
            "FileUrl": url,
            "EventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.extends.get(grant.video_id) is not None:
            event["Extend"] = json.dumps(self.extends[grant.video_id])
        headers_out, payload = aliyun_callback(
            event, callback_url=self.callback_url, private_key=self.callback_private_key
        )
        delivered = post(self.callback_url, payload, headers_out)
        return _uploaded(delivered, VideoId=grant.video_id, FileUrl=url)

    def _add_demo(self, video_id: str) -> dict[str, Any]:
        video = self.add_video(
            video_id,
            title="沙箱演示视频",
            duration=DEMO_DURATION_SECONDS,
            cover_url=DEMO_COVER,
            play_urls={self.video_url: 200},
        )
        for info in self.play_infos[video_id]:
            info["Format"] = "mp4"
        return video
