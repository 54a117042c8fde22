"""The VOD lifecycle through the provider stubs (which check every request's signature):
deletion at the provider as a durable job, on-demand transcoding, upload-credential
renewal, and Tencent reliable callbacks (PullEvents + ConfirmEvents)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from app.catalog import vod_jobs
from app.catalog.deletions import MediaDeletions, VodDeletion
from app.catalog.media import Media
from app.catalog.vod_jobs import VodJobs
from app.cli import main
from app.sandbox.vod import AliyunVodStub, TencentVodStub, tencent_new_file_upload
from app.settings import AppConfig, vod_config_model
from app.vod import VodRegistry
from app.vod.aliyun import AliyunVodProvider
from app.vod.base import CallbackRejected
from app.vod.tencent import TencentVodProvider
from luser_common import AppError, utc_now
from luser_db import Db

from .conftest import TENCENT_CALLBACK_TOKEN, Account, detached_pool, error_code


@pytest.fixture
def tencent(tencent_stub: TencentVodStub) -> Iterator[TencentVodStub]:
    yield tencent_stub
    tencent_stub.clear_failures()
    tencent_stub.events.clear()


@pytest.fixture
def aliyun(aliyun_stub: AliyunVodStub) -> Iterator[AliyunVodStub]:
    yield aliyun_stub
    aliyun_stub.clear_failures()


@pytest.fixture
def deletions(service_app: Starlette) -> MediaDeletions:
    return MediaDeletions(service_app.state.services.providers, interval_seconds=10, max_attempts=3)


async def _video(api: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": f"life {uuid.uuid4().hex[:8]}", **fields}
    r = await api.post("/api/admin/videos", headers=admin.headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


async def _delete(api: httpx.AsyncClient, admin: Account, video_id: int) -> None:
    r = await api.delete(f"/api/admin/videos/{video_id}", headers=admin.headers)
    assert r.status_code == 200, r.text


async def _row(media_id: str) -> VodDeletion:
    row = await VodDeletion.query().where("media_id = ?", media_id).first()
    assert row is not None
    return row


async def _settle_earlier(deletions: MediaDeletions) -> None:
    """Work off deletions other tests left queued, so a stub failure injected next is
    consumed by this test's own media (the stub counts failures per action)."""
    later = utc_now()
    for _ in range(deletions.max_attempts + 1):
        later += timedelta(days=1)
        await deletions.run_once(later)


def _file_id() -> str:
    return str(uuid.uuid4().int)[:19]


# -- deletion at the provider ----------------------------------------------------------


async def test_provider_delete_fails_twice_then_succeeds(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub, deletions: MediaDeletions
) -> None:
    await _settle_earlier(deletions)
    file_id = _file_id()
    tencent.add_media(file_id)
    video = await _video(api, admin, provider="tencent", media_id=file_id)
    await _delete(api, admin, video["id"])
    queued = await _row(file_id)
    assert (queued.status, queued.video_id, queued.attempts) == ("pending", video["id"], 0)

    tencent.fail("DeleteMedia", "InternalError", times=2)
    now = utc_now()
    await deletions.run_once(now)
    first = await _row(file_id)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error and "InternalError" in first.last_error
    assert first.next_attempt_at is not None and first.next_attempt_at > now
    await deletions.run_once(now)  # not due yet: the provider is not asked again
    assert len([c for c in tencent.calls("DeleteMedia") if c.params["FileId"] == file_id]) == 1

    await deletions.run_once(now + timedelta(seconds=15))  # after the first backoff (10 s)
    second = await _row(file_id)
    assert (second.status, second.attempts) == ("pending", 2)
    assert second.next_attempt_at is not None
    assert second.next_attempt_at >= utc_now() + timedelta(seconds=15)  # doubled: 20 s
    assert file_id in tencent.media  # still there, and so is the video row

    await deletions.run_once(now + timedelta(minutes=5))
    done = await _row(file_id)
    assert (done.status, done.outcome, done.attempts) == ("done", "deleted", 3)
    assert done.done_at is not None and done.last_error is None
    assert file_id in tencent.deleted and file_id not in tencent.media
    kept = await Db.find_first("select deleted_at from videos where id = ?", video["id"])
    assert kept is not None and kept["deleted_at"] is not None  # the row is kept


async def test_delete_of_unknown_media_is_done_and_logged(
    api: httpx.AsyncClient,
    admin: Account,
    aliyun: AliyunVodStub,
    deletions: MediaDeletions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    media_id = uuid.uuid4().hex  # never uploaded to the stub
    video = await _video(api, admin, provider="aliyun", media_id=media_id)
    await _delete(api, admin, video["id"])
    with caplog.at_level(logging.WARNING, logger="luser.vod"):
        await deletions.run_once()
    row = await _row(media_id)
    assert (row.status, row.outcome, row.attempts) == ("done", "unknown_media", 1)
    assert any(media_id in r.getMessage() and "unknown" in r.getMessage() for r in caplog.records)
    assert aliyun.calls("DeleteVideo")[-1].params["VideoIds"] == media_id


async def test_tencent_unknown_media_is_done_too(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub, deletions: MediaDeletions
) -> None:
    file_id = _file_id()
    video = await _video(api, admin, provider="tencent", media_id=file_id)
    await _delete(api, admin, video["id"])
    await deletions.run_once()
    row = await _row(file_id)
    assert (row.status, row.outcome) == ("done", "unknown_media")


async def test_media_a_live_video_uses_again_is_kept(
    api: httpx.AsyncClient, admin: Account, aliyun: AliyunVodStub, deletions: MediaDeletions
) -> None:
    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    one = await _video(api, admin, provider="aliyun", media_id=media_id)
    await _delete(api, admin, one["id"])
    # Before the job ran, an admin made a new video of the same media.
    await _video(api, admin, provider="aliyun", media_id=media_id)
    await deletions.run_once()
    row = await _row(media_id)
    assert (row.status, row.outcome) == ("done", "in_use")
    assert media_id in aliyun.videos


async def test_deletion_gives_up_after_max_attempts_until_retried(
    api: httpx.AsyncClient, admin: Account, aliyun: AliyunVodStub, deletions: MediaDeletions
) -> None:
    await _settle_earlier(deletions)
    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    video = await _video(api, admin, provider="aliyun", media_id=media_id)
    await _delete(api, admin, video["id"])
    aliyun.fail("DeleteVideo", "InternalError", status=500)
    later = utc_now()
    for _ in range(3):
        later += timedelta(hours=7)  # past any backoff
        await deletions.run_once(later)
    row = await _row(media_id)
    assert (row.status, row.attempts) == ("failed", 3)
    await deletions.run_once(later + timedelta(days=1))
    assert (await _row(media_id)).attempts == 3  # failed rows wait for an operator

    aliyun.clear_failures()
    assert await deletions.retry_failed() >= 1
    await deletions.run_once()
    assert (await _row(media_id)).outcome == "deleted" and media_id not in aliyun.videos


async def test_video_without_media_queues_nothing(api: httpx.AsyncClient, admin: Account) -> None:
    video = await _video(api, admin, provider="tencent")
    await _delete(api, admin, video["id"])
    assert await VodDeletion.query().where("video_id = ?", video["id"]).count() == 0


# -- transcoding and upload-credential renewal -----------------------------------------


async def test_transcode_with_a_template(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub, aliyun: AliyunVodStub
) -> None:
    file_id = _file_id()
    tencent.add_media(file_id)
    video = await _video(api, admin, provider="tencent", media_id=file_id)
    url = f"/api/admin/videos/{video['id']}/transcode"
    r = await api.post(url, headers=admin.headers, json={"template": "100030"})
    assert r.status_code == 202, r.text
    task = r.json()["data"]
    assert task["media_id"] == file_id and task["template"] == "100030"
    sent = [t for t in tencent.tasks if t["TaskId"] == task["task_id"]]
    assert sent and sent[0]["MediaProcessTask"] == {"TranscodeTaskSet": [{"Definition": 100030}]}

    r = await api.post(url, headers=admin.headers, json={"template": "hd"})
    assert r.status_code == 422 and error_code(r) == "VALIDATION_ERROR"

    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    video = await _video(api, admin, provider="aliyun", media_id=media_id)
    r = await api.post(
        f"/api/admin/videos/{video['id']}/transcode", headers=admin.headers, json={"template": "g1"}
    )
    assert r.status_code == 202, r.text
    job = aliyun.transcode_jobs[-1]
    assert job == {"VideoId": media_id, "TemplateGroupId": "g1", "Id": r.json()["data"]["task_id"]}

    bare = await _video(api, admin, provider="aliyun")
    r = await api.post(
        f"/api/admin/videos/{bare['id']}/transcode", headers=admin.headers, json={"template": "g1"}
    )
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"


async def test_transcode_of_media_the_provider_lost_is_404(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub
) -> None:
    video = await _video(api, admin, provider="tencent", media_id=_file_id())
    r = await api.post(
        f"/api/admin/videos/{video['id']}/transcode", headers=admin.headers, json={"template": "10"}
    )
    assert r.status_code == 404, r.text


async def test_renew_upload_credentials(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub, aliyun: AliyunVodStub
) -> None:
    video = await _video(api, admin, provider="aliyun")
    base = f"/api/admin/videos/{video['id']}/upload-credentials"
    r = await api.post(f"{base}/renew", headers=admin.headers, json={"file_name": "a.mp4"})
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"  # no upload under way

    r = await api.post(base, headers=admin.headers, json={"file_name": "a.mp4"})
    assert r.status_code == 200, r.text
    first = r.json()["data"]
    refreshed = len(aliyun.calls("RefreshUploadVideo"))
    r = await api.post(f"{base}/renew", headers=admin.headers, json={"file_name": "a.mp4"})
    assert r.status_code == 200, r.text
    renewed = r.json()["data"]
    assert renewed["media_id"] == first["media_id"]
    assert renewed["credentials"]["upload_auth"] and renewed["credentials"]["upload_address"]
    assert len(aliyun.calls("RefreshUploadVideo")) == refreshed + 1
    assert aliyun.calls("RefreshUploadVideo")[-1].params["VideoId"] == first["media_id"]

    video = await _video(api, admin, provider="tencent")
    base = f"/api/admin/videos/{video['id']}/upload-credentials"
    r = await api.post(base, headers=admin.headers, json={"file_name": "b.mp4"})
    assert r.status_code == 200
    r = await api.post(f"{base}/renew", headers=admin.headers, json={"file_name": "b.mp4"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["credentials"]["signature"]


# -- Tencent reliable callbacks -------------------------------------------------------


@pytest.fixture
async def pull_media(
    service_app: Starlette, app_config: AppConfig, tencent: TencentVodStub
) -> AsyncIterator[Media]:
    tencent_config = app_config.vod.tencent.model_copy(update={"event_mode": "pull"})
    registry = VodRegistry(vod_config_model()(tencent=tencent_config))
    yield Media(service_app.state.services.catalog, registry)
    await registry.aclose()


async def test_a_tencent_event_pulled_twice_is_applied_once(
    api: httpx.AsyncClient, admin: Account, tencent: TencentVodStub, pull_media: Media
) -> None:
    video = await _video(api, admin, provider="tencent")
    r = await api.post(
        f"/api/admin/videos/{video['id']}/upload-credentials",
        headers=admin.headers,
        json={"file_name": "c.mp4"},
    )
    assert r.status_code == 200
    file_id = _file_id()
    tencent.add_media(file_id, duration=42.0)
    body = json.loads(
        tencent_new_file_upload(file_id, duration=42, source_context=str(video["id"]))
    )
    handle = tencent.queue_event(body)

    tencent.fail("ConfirmEvents", "InternalError", times=1)  # applied, but not confirmed
    with pytest.raises(AppError):
        await pull_media.pull_events()
    assert handle in tencent.events  # so the provider hands it out again
    report = await pull_media.pull_events()
    assert report.outcomes == ["duplicate"] and report.confirmed == 1
    assert tencent.events == {}
    assert tencent.calls("ConfirmEvents")[-1].params == {"EventHandles": [handle]}

    count = await Db.query_int("select count(*) from vod_events where media_id = ?", file_id)
    assert count == 1
    r = await api.get(f"/api/admin/videos/{video['id']}", headers=admin.headers)
    after = r.json()["data"]
    assert (after["media_id"], after["media_status"], after["status"]) == (
        file_id,
        "ready",
        "draft",
    )
    assert after["duration_seconds"] == 42


async def test_an_event_that_fails_to_apply_is_not_confirmed(
    tencent: TencentVodStub, pull_media: Media
) -> None:
    file_id = _file_id()  # DescribeMediaInfos will not find it: the apply fails
    tencent.fail("DescribeMediaInfos", "InternalError", times=1)
    handle = tencent.queue_event(json.loads(tencent_new_file_upload(file_id)))
    report = await pull_media.pull_events()
    assert report.outcomes == ["error"] and report.confirmed == 0
    assert handle in tencent.events
    tencent.add_media(file_id)
    report = await pull_media.pull_events()
    assert report.outcomes == ["unmatched"] and handle not in tencent.events


async def test_vod_jobs_pull_only_in_pull_mode(
    service_app: Starlette, app_config: AppConfig, tencent: TencentVodStub, pull_media: Media
) -> None:
    tencent.queue_event(json.loads(tencent_new_file_upload(_file_id())))
    http_jobs = VodJobs(service_app.state.services.media, app_config.vod)
    assert (await http_jobs.run_once()).events is None
    assert tencent.events  # untouched
    pull_config = app_config.vod.model_copy(
        update={"tencent": app_config.vod.tencent.model_copy(update={"event_mode": "pull"})}
    )
    report = await VodJobs(pull_media, pull_config).run_once()
    assert report.events is not None and report.events.pulled == 1


async def test_pull_mode_refuses_http_callbacks(tencent: TencentVodStub) -> None:
    provider = TencentVodProvider(
        tencent.config(callback_token=TENCENT_CALLBACK_TOKEN, event_mode="pull")
    )
    with pytest.raises(CallbackRejected):
        await provider.parse_callback(
            {}, tencent_new_file_upload(_file_id()), {"token": TENCENT_CALLBACK_TOKEN}
        )


# -- the command line ---------------------------------------------------------------------


async def test_cli_runs_the_vod_jobs(
    aliyun: AliyunVodStub, app_config: AppConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``luser videos jobs`` (the worker for ``vod.jobs_interval_seconds = 0``) and
    ``luser videos deletions``, in their own event loop, configured by environment."""
    assert app_config.database.url is not None
    env = {
        "LUSER_ENV": "test",
        "LUSER_CONFIG_DIR": str(tmp_path),
        "LUSER__DATABASE__URL": app_config.database.url.get_secret_value(),
        "LUSER__VOD__ALIYUN__ACCESS_KEY_ID": aliyun.access_key_id,
        "LUSER__VOD__ALIYUN__ACCESS_KEY_SECRET": aliyun.access_key_secret,
        "LUSER__VOD__ALIYUN__ENDPOINT": aliyun.endpoint,
        "LUSER__VOD__ALIYUN__PROTOCOL": "http",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    video = await Db.query_int(
        "insert into videos (title, provider, media_id, media_status, deleted_at)"
        " values ('cli', 'aliyun', ?, 'ready', now()) returning id",
        media_id,
    )
    await Db.execute(
        "insert into vod_deletions (video_id, provider, media_id) values (?, 'aliyun', ?)",
        video,
        media_id,
    )
    runner = CliRunner()
    async with detached_pool(app_config):
        ran = await asyncio.to_thread(runner.invoke, main, ["videos", "jobs"])
        listed = await asyncio.to_thread(
            runner.invoke, main, ["videos", "deletions", "--all", "--json"]
        )

    assert ran.exit_code == 0, ran.output
    assert media_id in aliyun.deleted
    rows = [r for r in json.loads(listed.stdout) if r["media_id"] == media_id]
    assert listed.exit_code == 0 and rows[0]["outcome"] == "deleted"


async def test_the_service_runs_the_vod_jobs_every_interval(
    api: httpx.AsyncClient,
    admin: Account,
    service_app: Starlette,
    app_config: AppConfig,
    aliyun: AliyunVodStub,
) -> None:
    """The catalog feature's VOD jobs run every ``vod.jobs_interval_seconds``."""
    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    video = await _video(api, admin, provider="aliyun", media_id=media_id)
    await _delete(api, admin, video["id"])
    config = app_config.vod.model_copy(update={"jobs_interval_seconds": 0.01})
    async with vod_jobs.running(service_app.state.services.media, config):
        deadline = asyncio.get_running_loop().time() + 20
        while (await _row(media_id)).status != "done":
            assert asyncio.get_running_loop().time() < deadline, "the job never ran"
            await asyncio.sleep(0.01)
    assert media_id in aliyun.deleted


async def test_stand_ins_check_signatures_of_the_new_actions(
    tencent: TencentVodStub, aliyun: AliyunVodStub
) -> None:
    """A client with the wrong secret is refused as the provider would refuse it."""
    file_id = _file_id()
    tencent.add_media(file_id)
    forged = TencentVodProvider(tencent.config(secret_key="wrong-secret"))
    for call in (forged.delete_media(file_id), forged.pull_events(), forged.confirm_events(["h"])):
        with pytest.raises(AppError) as caught:
            await call
        assert caught.value.details["code"] == "AuthFailure.SignatureFailure"
    assert file_id in tencent.media

    media_id = uuid.uuid4().hex
    aliyun.add_video(media_id)
    wrong = AliyunVodProvider(aliyun.config(access_key_secret="wrong-secret"))
    for ali_call in (
        wrong.delete_media(media_id),
        wrong.transcode(media_id, "g1"),
        wrong.renew_upload_credentials(media_id, "t", "a.mp4"),
    ):
        with pytest.raises(AppError) as refused:
            await ali_call
        assert refused.value.details["code"] == "SignatureDoesNotMatch"
    assert media_id in aliyun.videos
