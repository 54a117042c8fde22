"""An operator uploads a file in sandbox mode, over real HTTP only: the upload
credentials the service hands out are accepted by the sandbox's upload target (and
forged or expired ones refused), the sandbox sends the provider's signed "upload
finished" callback, and the video plays the uploaded bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.sandbox.media import demo_video
from app.seed import seed_demo_data, with_services
from app.settings import AppConfig

from .conftest import detached_pool
from .live_service import own_database, sign_up
from .test_sandbox_journey import sandbox_service


@pytest.fixture(scope="module")
async def detached(app_config: AppConfig) -> object:
    async with detached_pool(app_config):
        yield


@pytest.fixture(scope="module")
def service(app_config: AppConfig, detached: None) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a seeded service in sandbox mode."""
    with own_database() as url:
        config = app_config.model_copy(
            update={"database": app_config.database.model_copy(update={"url": SecretStr(url)})}
        )
        assert asyncio.run(with_services(lambda s: seed_demo_data(s.accounts), config))
        with sandbox_service(config) as base:
            yield base, url


def _clip(tag: bytes) -> bytes:
    """The demo MP4 plus a ``free`` box carrying ``tag``: a playable file whose bytes
    are not the demo video's, so serving it proves the upload was kept."""
    return demo_video() + struct.pack(">I", 8 + len(tag)) + b"free" + tag


class Operator:
    def __init__(self, api: httpx.Client, db_url: str) -> None:
        self.api = api
        self.db_url = db_url
        _, jwt = sign_up(api, db_url, admin=True)
        self.headers = {"Authorization": f"Bearer {jwt}"}

    def new_video(self, provider: str) -> int:
        r = self.api.post(
            "/api/admin/videos",
            json={"title": f"{provider} 沙箱上传", "provider": provider},
            headers=self.headers,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["data"]["id"])

    def credentials(self, video_id: int) -> dict[str, Any]:
        r = self.api.post(
            f"/api/admin/videos/{video_id}/upload-credentials",
            json={"file_name": "clip.mp4"},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def video(self, video_id: int) -> dict[str, Any]:
        r = self.api.get(f"/api/admin/videos/{video_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def publish_and_play(self, video_id: int, browser: httpx.Client) -> bytes:
        r = self.api.post(f"/api/admin/videos/{video_id}/publish", headers=self.headers)
        assert r.status_code == 200, r.text
        _, jwt = sign_up(self.api, self.db_url)
        play = self.api.post(
            f"/api/videos/{video_id}/play", headers={"Authorization": f"Bearer {jwt}"}
        )
        assert play.status_code == 200, play.text
        video = browser.get(play.json()["data"]["url"])
        assert video.status_code == 200, video.text
        assert video.headers["content-type"] == "video/mp4"
        return video.content


def _forged_tencent_signature(signature: str) -> str:
    raw = base64.b64decode(signature)
    return base64.b64encode(b"\0" * 20 + raw[20:]).decode()


def test_a_tencent_upload_with_the_signature_plays(service: tuple[str, str]) -> None:
    base, db_url = service
    clip = _clip(b"tencent-upload-1")
    with httpx.Client(base_url=base, timeout=30) as api, httpx.Client(timeout=30) as browser:
        operator = Operator(api, db_url)
        video_id = operator.new_video("tencent")
        grant = operator.credentials(video_id)
        target, signature = grant["credentials"]["upload_url"], grant["credentials"]["signature"]
        assert target.startswith("http://127.0.0.1:"), grant

        forged = browser.post(
            target, content=clip, headers={"X-VOD-Signature": _forged_tencent_signature(signature)}
        )
        assert forged.status_code == 403 and forged.json()["Code"] == "InvalidSignature"
        not_mp4 = browser.post(target, content=b"hello", headers={"X-VOD-Signature": signature})
        assert not_mp4.status_code == 400, not_mp4.text
        assert operator.video(video_id)["media_status"] == "uploading"

        r = browser.post(
            target,
            content=clip,
            headers={"X-VOD-Signature": signature, "X-VOD-File-Name": "clip.mp4"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["Callback"]["Status"] == 200, r.text  # the service took the callback
        video = operator.video(video_id)
        assert video["media_id"] == r.json()["FileId"]
        assert video["media_status"] == "ready" and video["duration_seconds"] == 3, video
        assert operator.publish_and_play(video_id, browser) == clip


def _oss_put_headers(auth: dict[str, str], resource: str, secret: str) -> dict[str, str]:
    """An OSS PutObject signed with header signature version 1 (Aliyun's OSS docs)."""
    headers = {
        "Content-Type": "video/mp4",
        "Date": formatdate(usegmt=True),
        "x-oss-security-token": auth["SecurityToken"],
    }
    text = (
        f"PUT\n\nvideo/mp4\n{headers['Date']}\n"
        f"x-oss-security-token:{auth['SecurityToken']}\n{resource}"
    )
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    signature = base64.b64encode(digest).decode()
    return {**headers, "Authorization": f"OSS {auth['AccessKeyId']}:{signature}"}


def test_an_aliyun_oss_upload_with_the_upload_auth_plays(service: tuple[str, str]) -> None:
    base, db_url = service
    clip = _clip(b"aliyun-upload-1")
    with httpx.Client(base_url=base, timeout=30) as api, httpx.Client(timeout=30) as browser:
        operator = Operator(api, db_url)
        video_id = operator.new_video("aliyun")
        grant = operator.credentials(video_id)
        address = json.loads(base64.b64decode(grant["credentials"]["upload_address"]))
        auth = json.loads(base64.b64decode(grant["credentials"]["upload_auth"]))
        resource = f"/{address['Bucket']}/{address['FileName']}"
        target = address["Endpoint"] + resource
        assert target.startswith("http://127.0.0.1:"), address

        wrong = browser.put(target, content=clip, headers=_oss_put_headers(auth, resource, "x"))
        assert wrong.status_code == 403 and wrong.json()["Code"] == "SignatureDoesNotMatch"
        assert operator.video(video_id)["media_status"] == "uploading"

        headers = _oss_put_headers(auth, resource, auth["AccessKeySecret"])
        r = browser.put(target, content=clip, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["Callback"]["Status"] == 200, r.text
        video = operator.video(video_id)
        assert video["media_id"] == grant["media_id"]
        assert video["media_status"] == "ready" and video["duration_seconds"] == 3, video
        assert operator.publish_and_play(video_id, browser) == clip
