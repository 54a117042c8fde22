"""VOD glue through the provider stubs: upload credentials, media refresh, callbacks, play."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.container import Media
from app.sandbox.vod import (
    AliyunVodStub,
    TencentVodStub,
    aliyun_callback,
    tencent_new_file_upload,
    tencent_procedure_finished,
)
from app.settings import VodConfig, vod_config_model
from app.vod import VodRegistry
from luser_common import AppError
from luser_db import Db

from .conftest import (
    ALIYUN_CALLBACK_KEY,
    ALIYUN_CALLBACK_URL,
    TENCENT_CALLBACK_TOKEN,
    Account,
    Levels,
    MakeAccount,
    error_code,
)

TENCENT_HOOK = f"/api/vod/callbacks/tencent?token={TENCENT_CALLBACK_TOKEN}"


@pytest.fixture
def tencent(tencent_stub: TencentVodStub) -> Iterator[TencentVodStub]:
    yield tencent_stub
    tencent_stub.clear_failures()
    tencent_stub.outage_status = None


@pytest.fixture
def aliyun(aliyun_stub: AliyunVodStub) -> Iterator[AliyunVodStub]:
    yield aliyun_stub
    aliyun_stub.clear_failures()
    aliyun_stub.outage_status = None


async def _video(api: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": f"vod {uuid.uuid4().hex[:8]}", **fields}
    r = await api.post("/api/admin/videos", headers=admin.headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


async def _published(api: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    video = await _video(api, admin, **fields)
    r = await api.post(f"/api/admin/videos/{video['id']}/publish", headers=admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


async def _admin_get(api: httpx.AsyncClient, admin: Account, video_id: int) -> dict[str, Any]:
    r = await api.get(f"/api/admin/videos/{video_id}", headers=admin.headers)
    return dict(r.json()["data"])


async def test_tencent_upload_then_callback_makes_the_video_ready(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub
) -> None:
    video = await _video(api, admin, provider="tencent")
    r = await api.post(
        f"/api/admin/videos/{video['id']}/upload-credentials",
        headers=admin.headers,
        json={"file_name": "demo.mp4"},
    )
    assert r.status_code == 200, r.text
    grant = r.json()["data"]
    assert grant["provider"] == "tencent" and grant["credentials"]["signature"]
    assert (await _admin_get(api, admin, video["id"]))["status"] == "processing"

    file_id = str(uuid.uuid4().int)[:19]
    tencent.add_media(file_id, duration=95.2)
    body = tencent_new_file_upload(file_id, duration=95.2, source_context=str(video["id"]))
    r = await api.post(TENCENT_HOOK, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "applied" and r.json()["data"]["video_id"] == video["id"]
    after = await _admin_get(api, admin, video["id"])
    assert after["media_id"] == file_id and after["media_status"] == "ready"
    assert after["status"] == "draft" and after["duration_seconds"] == 95

    r = await api.post(TENCENT_HOOK, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["data"]["status"] == "duplicate"
    n = await Db.find_first("select count(*) as n from vod_events where media_id = ?", file_id)
    assert n is not None and n["n"] == 1

    # a later transcoding event for the same media is a new event, applied once
    done = tencent_procedure_finished(file_id, task_id=f"task-{file_id}")
    r = await api.post(TENCENT_HOOK, content=done, headers={"content-type": "application/json"})
    assert r.json()["data"]["status"] == "applied"
    r = await api.post(f"/api/admin/videos/{video['id']}/publish", headers=admin.headers)
    assert r.status_code == 200


async def test_callbacks_are_authenticated(api: httpx.AsyncClient, tencent: TencentVodStub) -> None:
    body = tencent_new_file_upload("123456789")
    r = await api.post("/api/vod/callbacks/tencent?token=wrong", content=body)
    assert r.status_code == 403 and error_code(r) == "VOD_CALLBACK_REJECTED"
    r = await api.post("/api/vod/callbacks/tencent", content=body)
    assert r.status_code == 403
    r = await api.post(TENCENT_HOOK, content=b"{broken")
    assert r.status_code == 400
    headers, payload = aliyun_callback(
        {"EventType": "FileUploadComplete", "VideoId": "v1", "Status": "success"},
        callback_url=ALIYUN_CALLBACK_URL,
        private_key="not-the-key",
    )
    r = await api.post("/api/vod/callbacks/aliyun", content=payload, headers=headers)
    assert r.status_code == 403 and error_code(r) == "VOD_CALLBACK_REJECTED"
    r = await api.post("/api/vod/callbacks/aliyun", content=payload)
    assert r.status_code == 403


async def test_aliyun_upload_and_signed_callback(
    api: httpx.AsyncClient, admin: Account, aliyun: AliyunVodStub
) -> None:
    video = await _video(api, admin, provider="aliyun")
    r = await api.post(
        f"/api/admin/videos/{video['id']}/upload-credentials",
        headers=admin.headers,
        json={"file_name": "demo.mp4"},
    )
    assert r.status_code == 200, r.text
    grant = r.json()["data"]
    media_id = grant["media_id"]
    assert (
        media_id and grant["credentials"]["upload_auth"] and grant["credentials"]["upload_address"]
    )
    assert (await _admin_get(api, admin, video["id"]))["media_id"] == media_id

    aliyun.videos[media_id]["Status"] = "Normal"  # the upload finished at the provider
    event = {
        "EventType": "FileUploadComplete",
        "VideoId": media_id,
        "Status": "success",
        "EventTime": "2026-11-21T08:00:00Z",
    }
    headers, payload = aliyun_callback(
        event, callback_url=ALIYUN_CALLBACK_URL, private_key=ALIYUN_CALLBACK_KEY
    )
    r = await api.post("/api/vod/callbacks/aliyun", content=payload, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "applied"
    after = await _admin_get(api, admin, video["id"])
    assert after["media_status"] == "ready" and after["status"] == "draft"
    r = await api.post("/api/vod/callbacks/aliyun", content=payload, headers=headers)
    assert r.json()["data"]["status"] == "duplicate"


async def test_callback_waits_for_the_provider_to_confirm(
    api: httpx.AsyncClient, admin: Account, aliyun: AliyunVodStub
) -> None:
    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id, status="Transcoding")
    video = await _video(api, admin, provider="aliyun", media_id=media_id)
    await Db.execute(
        "update videos set media_status = 'uploading', status = 'processing' where id = ?",
        video["id"],
    )
    headers, payload = aliyun_callback(
        {
            "EventType": "FileUploadComplete",
            "VideoId": media_id,
            "Status": "success",
            "EventTime": "t1",
        },
        callback_url=ALIYUN_CALLBACK_URL,
        private_key=ALIYUN_CALLBACK_KEY,
    )
    r = await api.post("/api/vod/callbacks/aliyun", content=payload, headers=headers)
    assert r.status_code == 200
    after = await _admin_get(api, admin, video["id"])
    assert after["media_status"] == "uploading" and after["status"] == "processing"


async def test_provider_errors_are_502_and_write_nothing(
    api: httpx.AsyncClient, admin: Account, aliyun: AliyunVodStub
) -> None:
    video = await _video(api, admin, provider="aliyun")
    aliyun.fail("CreateUploadVideo", "Forbidden.RAM", status=403)
    r = await api.post(
        f"/api/admin/videos/{video['id']}/upload-credentials",
        headers=admin.headers,
        json={"file_name": "demo.mp4"},
    )
    assert r.status_code == 502 and error_code(r) == "EXTERNAL_SERVICE_ERROR"
    assert r.json()["error"]["details"]["code"] == "Forbidden.RAM"
    aliyun.clear_failures()
    aliyun.outage_status = 503
    r = await api.post(
        f"/api/admin/videos/{video['id']}/upload-credentials",
        headers=admin.headers,
        json={"file_name": "demo.mp4"},
    )
    assert r.status_code in (502, 503), r.text
    after = await _admin_get(api, admin, video["id"])
    assert after["status"] == "draft" and after["media_id"] is None
    assert after["media_status"] == "none"


async def test_refresh_pulls_media_info(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub
) -> None:
    file_id = str(uuid.uuid4().int)[:19]
    tencent.add_media(
        file_id, duration=300.4, cover_url="https://1500000000.vod2.myqcloud.com/a/c.jpg"
    )
    video = await _video(api, admin, provider="tencent", media_id=file_id)
    r = await api.post(f"/api/admin/videos/{video['id']}/refresh", headers=admin.headers)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["duration_seconds"] == 300 and data["cover_url"].endswith("/a/c.jpg")
    tencent.fail("DescribeMediaInfos", "InternalError")
    r = await api.post(f"/api/admin/videos/{video['id']}/refresh", headers=admin.headers)
    assert r.status_code == 502
    no_media = await _video(api, admin, provider="tencent")
    r = await api.post(f"/api/admin/videos/{no_media['id']}/refresh", headers=admin.headers)
    assert r.status_code == 409


async def test_play_full_preview_or_forbidden(
    api: httpx.AsyncClient,
    admin: Account,
    make_account: MakeAccount,
    levels: Levels,
    tencent: TencentVodStub,
) -> None:
    file_id = str(uuid.uuid4().int)[:19]
    tencent.add_media(file_id)
    free = await _published(api, admin, provider="tencent", media_id=file_id)
    paid = await _published(
        api, admin, provider="tencent", media_id=file_id + "1", required_level=2, preview_seconds=30
    )
    tencent.add_media(file_id + "1")
    locked = await _published(
        api, admin, provider="tencent", media_id=file_id + "2", required_level=2
    )
    user = await make_account()

    r = await api.post(f"/api/videos/{free['id']}/play", headers=user.headers)
    assert r.status_code == 200, r.text
    grant = r.json()["data"]
    assert grant["preview"] is False and "sign=" in grant["url"] and "exper=" not in grant["url"]
    r = await api.post(f"/api/videos/{paid['id']}/play", headers=user.headers)
    grant = r.json()["data"]
    assert (
        grant["preview"] is True and grant["preview_seconds"] == 30 and "exper=30" in grant["url"]
    )
    r = await api.post(f"/api/videos/{locked['id']}/play", headers=user.headers)
    assert r.status_code == 403 and error_code(r) == "PREVIEW_NOT_AVAILABLE"

    levels.levels[user.id] = 2  # a subscription covering level 2
    r = await api.post(f"/api/videos/{paid['id']}/play", headers=user.headers)
    assert r.json()["data"]["preview"] is False

    assert (await api.post(f"/api/videos/{free['id']}/play")).status_code == 401
    draft = await _video(api, admin, provider="tencent", media_id=file_id + "3")
    r = await api.post(f"/api/videos/{draft['id']}/play", headers=user.headers)
    assert r.status_code == 404


async def test_play_through_aliyun_and_provider_failure(
    api: httpx.AsyncClient, admin: Account, make_account: MakeAccount, aliyun: AliyunVodStub
) -> None:
    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    video = await _published(api, admin, provider="aliyun", media_id=media_id)
    user = await make_account()
    r = await api.post(f"/api/videos/{video['id']}/play", headers=user.headers)
    assert r.status_code == 200, r.text
    assert media_id in r.json()["data"]["url"]
    aliyun.fail("GetPlayInfo", "Throttling.User", status=400)
    r = await api.post(f"/api/videos/{video['id']}/play", headers=user.headers)
    assert r.status_code == 502 and error_code(r) == "EXTERNAL_SERVICE_ERROR"
    assert json.dumps(r.json()).count("Throttling.User") >= 1


async def test_unreachable_or_unconfigured_provider_is_503(
    api: httpx.AsyncClient, admin: Account, service_app: Starlette
) -> None:
    video = await _video(api, admin, provider="tencent", media_id=str(uuid.uuid4().int)[:19])
    dead = TencentVodStub()
    dead_config = dead.config()
    dead.stop()  # nothing listens on that port any more
    catalog = service_app.state.services.catalog
    media = Media(catalog, VodRegistry(vod_config_model()(tencent=dead_config)))
    with pytest.raises(AppError) as caught:
        await media.refresh(video["id"])
    assert caught.value.status_code == 503 and caught.value.code == "NETWORK_ERROR"
    unconfigured = Media(catalog, VodRegistry(VodConfig()))
    with pytest.raises(AppError) as caught:
        await unconfigured.upload_credentials(video["id"], "a.mp4")
    assert caught.value.status_code == 503 and caught.value.code == "VOD_NOT_CONFIGURED"
    after = await _admin_get(api, admin, video["id"])
    assert after["status"] == "draft" and after["media_status"] == "ready"
    assert after["duration_seconds"] == video["duration_seconds"]
