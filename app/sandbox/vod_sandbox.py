"""The VOD stand-ins in sandbox mode: every media id plays the shipped demo video.

They are the signature-checking test stubs of :mod:`app.sandbox.vod` plus what a
newcomer needs: an unknown media id (a seeded video, one an admin typed in) is
answered as the demo video instead of "not found", and the stub's own port serves
that video's bytes with Range support, as the provider's CDN would. Tencent play
URLs carry Key hotlink signatures, which the stand-in checks before serving.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from typing import Any

from pydantic import SecretStr

from app.sandbox.media import DEMO_DURATION_SECONDS, DEMO_VIDEO_PATH, demo_video, serve_bytes
from app.sandbox.vod import AliyunVodStub, TencentVodStub, _Reply
from app.settings import AliyunVodConfig, TencentVodConfig
from app.vod.signing import tencent_key_url

__all__ = ["SandboxAliyunVod", "SandboxTencentVod"]

DEMO_COVER = "https://example.invalid/covers/sandbox.jpg"


def _media_reply(headers: dict[str, str]) -> _Reply:
    reply = serve_bytes(demo_video(), headers.get("range"))
    return _Reply(reply.status, reply.body, "video/mp4", reply.headers)


class SandboxTencentVod(TencentVodStub):
    """Tencent VOD API on 127.0.0.1 plus the demo video behind Key hotlink protection."""

    def __init__(self) -> None:
        super().__init__(secret_id="AKIDsandbox" + secrets.token_hex(8))
        self.secret_key = secrets.token_hex(16)
        self.play_key = secrets.token_hex(12)
        self.callback_token = secrets.token_hex(12)

    @property
    def video_url(self) -> str:
        return f"http://{self.endpoint}{DEMO_VIDEO_PATH}"

    def sandbox_config(self, service_url: str) -> TencentVodConfig:
        """The ``[vod.tencent]`` section aimed at this stand-in."""
        return self.config(
            play_key=SecretStr(self.play_key), callback_token=SecretStr(self.callback_token)
        )

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        if method == "GET" and urllib.parse.urlsplit(path).path == DEMO_VIDEO_PATH:
            return self._serve_video(path, headers)
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

    def _serve_video(self, path: str, headers: dict[str, str]) -> _Reply:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        try:
            expires = int(query.get("t", ""), 16)
            expected = tencent_key_url(
                self.video_url,
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
        return _media_reply(headers)


class SandboxAliyunVod(AliyunVodStub):
    """Aliyun VOD API on 127.0.0.1 plus the demo video as every video's play URL."""

    def __init__(self) -> None:
        super().__init__(access_key_id="LTAIsandbox" + secrets.token_hex(8))
        self.access_key_secret = secrets.token_hex(16)
        self.callback_private_key = secrets.token_hex(12)

    @property
    def video_url(self) -> str:
        return f"http://{self.endpoint}{DEMO_VIDEO_PATH}"

    def sandbox_config(self, service_url: str) -> AliyunVodConfig:
        """The ``[vod.aliyun]`` section aimed at this stand-in."""
        return self.config(
            callback_private_key=SecretStr(self.callback_private_key),
            callback_url=f"{service_url}/api/vod/callbacks/aliyun",
        )

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urllib.parse.urlsplit(path)
        if method == "GET" and parts.path == DEMO_VIDEO_PATH:
            return _media_reply(headers)
        query = dict(urllib.parse.parse_qsl(parts.query))
        video_id = query.get("VideoId", "")
        if video_id and video_id not in self.videos:
            self._add_demo(video_id)
        return super()._handle(method, path, headers, body)

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
