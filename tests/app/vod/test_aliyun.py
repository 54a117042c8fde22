"""AliyunVodProvider against the ACS3-verifying stub."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
from typing import Any

import pytest
from pydantic import SecretStr

from app.sandbox.vod import AliyunVodStub, aliyun_callback
from app.settings import AliyunVodConfig
from app.vod import AliyunVodProvider, CallbackRejected, MediaStatus, VodEventKind
from luser_common import (
    ConfigError,
    DeserializationError,
    ExternalServiceError,
    NetworkError,
    NotFound,
)

VIDEO_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
AUTH_KEY = "aliyunvodexp1234"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def b64json(text: str | None) -> dict[str, Any]:
    return json.loads(base64.b64decode(text or ""))


# -- upload credentials ---------------------------------------------------------------


async def test_create_upload_video(aliyun_stub: AliyunVodStub) -> None:
    provider = AliyunVodProvider(aliyun_stub.config(template_group_id="tg-1"))
    creds = await provider.upload_credentials(
        "演示 视频*~", "demo.mp4", description="d", category_id=7, source_context="17"
    )
    assert creds.provider == "aliyun" and creds.media_id in aliyun_stub.videos
    address, auth = b64json(creds.upload_address), b64json(creds.upload_auth)
    assert address["Bucket"] == "outin-stub" and address["FileName"].endswith(".mp4")
    assert auth["AccessKeyId"] == "STS.stub" and auth["SecurityToken"]
    assert creds.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") == auth["ExpireUTCTime"]
    (request,) = aliyun_stub.calls("CreateUploadVideo")
    assert request.query["Title"] == "演示 视频*~" and request.query["FileName"] == "demo.mp4"
    assert request.query["TemplateGroupId"] == "tg-1" and request.query["CateId"] == "7"
    assert json.loads(request.query["UserData"]) == {"Extend": {"context": "17"}}
    assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=")


# -- media info -----------------------------------------------------------------------


async def test_media_info(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.add_video(VIDEO_ID, title="演示", duration=42.5, status="Transcoding")
    info = await AliyunVodProvider(aliyun_stub.config()).media_info(VIDEO_ID)
    assert info.title == "演示" and info.duration == 42.5 and info.cover_url
    assert info.status is MediaStatus.PROCESSING and info.provider_status == "Transcoding"
    aliyun_stub.videos[VIDEO_ID]["Status"] = "Normal"
    info = await AliyunVodProvider(aliyun_stub.config()).media_info(VIDEO_ID)
    assert info.status is MediaStatus.READY


async def test_unknown_video_is_not_found(aliyun_stub: AliyunVodStub) -> None:
    with pytest.raises(NotFound) as caught:
        await AliyunVodProvider(aliyun_stub.config()).media_info("missing")
    assert caught.value.details["code"] == "InvalidVideo.NotFound"


# -- signatures and errors ------------------------------------------------------------


async def test_wrong_secret_is_rejected_by_the_stub(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.add_video(VIDEO_ID)
    provider = AliyunVodProvider(aliyun_stub.config(access_key_secret="not-the-secret"))
    with pytest.raises(ExternalServiceError) as caught:
        await provider.media_info(VIDEO_ID)
    assert caught.value.status_code == 502
    assert caught.value.details["code"] == "SignatureDoesNotMatch"


async def test_unknown_access_key_is_rejected(aliyun_stub: AliyunVodStub) -> None:
    provider = AliyunVodProvider(aliyun_stub.config(access_key_id="LTAIsomeoneElse"))
    with pytest.raises(ExternalServiceError) as caught:
        await provider.media_info(VIDEO_ID)
    assert caught.value.details["code"] == "InvalidAccessKeyId.NotFound"


async def test_stub_signature_check_detects_a_tampered_query(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.add_video(VIDEO_ID)
    await AliyunVodProvider(aliyun_stub.config()).media_info(VIDEO_ID)
    (request,) = aliyun_stub.requests
    query = urllib.parse.urlencode(request.query)
    assert aliyun_stub.verify("POST", "/", query, request.headers, request.body) is None
    tampered = urllib.parse.urlencode({**request.query, "VideoId": "other"})
    error = aliyun_stub.verify("POST", "/", tampered, request.headers, request.body)
    assert error is not None and error[1] == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("code", "status"), [("Throttling.User", 400), ("Forbidden.RAM", 403), ("InternalError", 500)]
)
async def test_provider_error_codes(aliyun_stub: AliyunVodStub, code: str, status: int) -> None:
    aliyun_stub.fail("GetVideoInfo", code, status=status)
    with pytest.raises(ExternalServiceError) as caught:
        await AliyunVodProvider(aliyun_stub.config()).media_info(VIDEO_ID)
    assert caught.value.details["code"] == code
    assert caught.value.details["provider"] == "aliyun" and caught.value.details["request_id"]


async def test_http_outage_with_html_body_is_a_502(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.outage_status = 503
    with pytest.raises(ExternalServiceError) as caught:
        await AliyunVodProvider(aliyun_stub.config()).media_info(VIDEO_ID)
    assert caught.value.details["code"] == "InvalidResponse"


async def test_unreachable_provider_is_a_503(aliyun_stub: AliyunVodStub) -> None:
    provider = AliyunVodProvider(aliyun_stub.config())
    aliyun_stub.stop()
    with pytest.raises(NetworkError) as caught:
        await provider.media_info(VIDEO_ID)
    assert caught.value.status_code == 503 and caught.value.details["provider"] == "aliyun"
    assert "127.0.0.1" not in str(caught.value.details)


async def test_slow_provider_times_out_as_unreachable(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.add_video(VIDEO_ID)
    aliyun_stub.delay_seconds = 1.0
    provider = AliyunVodProvider(aliyun_stub.config(timeout_seconds=0.2))
    with pytest.raises(NetworkError):
        await provider.media_info(VIDEO_ID)


async def test_missing_credentials_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await AliyunVodProvider(AliyunVodConfig(endpoint="127.0.0.1:9")).media_info(VIDEO_ID)


# -- play URLs ------------------------------------------------------------------------


async def test_play_info_picks_the_best_stream_with_auth_timeout(
    aliyun_stub: AliyunVodStub,
) -> None:
    aliyun_stub.add_video(
        VIDEO_ID,
        play_urls={
            "https://v.example.com/a/ld.m3u8": 400,
            "https://v.example.com/a/hd.m3u8": 2000,
        },
    )
    provider = AliyunVodProvider(aliyun_stub.config())
    signed = await provider.play_url(VIDEO_ID, ttl=900)
    assert signed.url.startswith("https://v.example.com/a/hd.m3u8?auth_timeout=900")
    assert not signed.preview
    (request,) = aliyun_stub.calls("GetPlayInfo")
    assert request.query["AuthTimeout"] == "900" and "PlayConfig" not in request.query


async def test_preview_passes_preview_time(aliyun_stub: AliyunVodStub) -> None:
    aliyun_stub.add_video(VIDEO_ID)
    provider = AliyunVodProvider(aliyun_stub.config(play_domain="play.example.com"))
    signed = await provider.play_url(VIDEO_ID, preview_seconds=30)
    assert signed.preview_seconds == 30 and signed.preview_enforced
    (request,) = aliyun_stub.calls("GetPlayInfo")
    assert json.loads(request.query["PlayConfig"]) == {
        "PreviewTime": "30",
        "PlayDomain": "play.example.com",
    }
    assert request.query["AuthTimeout"] == "3600"


async def test_type_a_signing_of_a_url() -> None:
    config = AliyunVodConfig(url_auth_key=SecretStr(AUTH_KEY), play_url_ttl_seconds=1800)
    before = int(time.time())
    signed = await AliyunVodProvider(config).play_url(
        "https://v.example.com/video/standard/test.mp4", ttl=600
    )
    auth_key = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(signed.url).query))["auth_key"]
    ts, rand, uid, digest = auth_key.split("-")
    assert (rand, uid) == ("0", "0")
    assert digest == md5(f"/video/standard/test.mp4-{ts}-0-0-{AUTH_KEY}")
    # The CDN accepts until ts + console validity, which must land at now + ttl.
    assert before + 600 <= int(ts) + 1800 <= int(time.time()) + 600
    assert int(signed.expires_at.timestamp()) == int(ts) + 1800


async def test_preview_of_a_plain_url_is_short_and_not_enforced() -> None:
    provider = AliyunVodProvider(AliyunVodConfig(url_auth_key=SecretStr(AUTH_KEY)))
    before = time.time()
    signed = await provider.play_url("https://v.example.com/a/b.mp4", preview_seconds=90)
    assert signed.preview and not signed.preview_enforced
    assert signed.expires_at.timestamp() - before <= 91
    with pytest.raises(ConfigError):
        await AliyunVodProvider(AliyunVodConfig()).play_url(
            "https://v.example.com/a/b.mp4", preview_seconds=90
        )


# -- callbacks ------------------------------------------------------------------------

CALLBACK_URL = "https://api.example.com/api/vod/callback/aliyun"
PRIVATE_KEY = "callback-private-key"


def callback_provider() -> AliyunVodProvider:
    return AliyunVodProvider(
        AliyunVodConfig(callback_url=CALLBACK_URL, callback_private_key=SecretStr(PRIVATE_KEY))
    )


def upload_complete(**extra: Any) -> dict[str, Any]:
    return {
        "EventTime": "2026-11-21T08:00:00Z",
        "EventType": "FileUploadComplete",
        "VideoId": VIDEO_ID,
        "Status": "success",
        "Size": 1024,
        "FileUrl": "https://outin.oss.example.com/sv/a.mp4",
        "Extend": json.dumps({"context": "17"}),
        **extra,
    }


async def test_upload_callback_verified_and_normalised() -> None:
    headers, body = aliyun_callback(
        upload_complete(), callback_url=CALLBACK_URL, private_key=PRIVATE_KEY
    )
    event = await callback_provider().parse_callback(headers, body)
    assert event is not None and event.kind is VodEventKind.UPLOAD_FINISHED
    assert event.media_id == VIDEO_ID and event.source_context == "17"
    assert event.event_id == f"aliyun:FileUploadComplete:{VIDEO_ID}:2026-11-21T08:00:00Z"


async def test_replayed_callback_keeps_the_event_id() -> None:
    provider = callback_provider()
    first = aliyun_callback(upload_complete(), callback_url=CALLBACK_URL, private_key=PRIVATE_KEY)
    later = aliyun_callback(
        upload_complete(),
        callback_url=CALLBACK_URL,
        private_key=PRIVATE_KEY,
        timestamp=int(time.time()) + 5,
    )
    one, two = [await provider.parse_callback(h, b) for h, b in (first, later)]
    assert one is not None and two is not None and one.event_id == two.event_id


async def test_lower_case_header_names_are_accepted() -> None:
    headers, body = aliyun_callback(
        upload_complete(), callback_url=CALLBACK_URL, private_key=PRIVATE_KEY
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    assert await callback_provider().parse_callback(lowered, body) is not None


@pytest.mark.parametrize(
    ("url", "key", "age"),
    [
        (CALLBACK_URL, "wrong-key", 0),  # forged signature
        (CALLBACK_URL + "?x=1", PRIVATE_KEY, 0),  # signed for another URL
        (CALLBACK_URL, PRIVATE_KEY, 301),  # stale
        (CALLBACK_URL, PRIVATE_KEY, -301),  # from the future
    ],
)
async def test_forged_or_stale_callbacks_are_rejected(url: str, key: str, age: int) -> None:
    headers, body = aliyun_callback(
        upload_complete(), callback_url=url, private_key=key, timestamp=int(time.time()) - age
    )
    with pytest.raises(CallbackRejected):
        await callback_provider().parse_callback(headers, body)


@pytest.mark.parametrize("drop", ["X-VOD-TIMESTAMP", "X-VOD-SIGNATURE"])
async def test_unsigned_callbacks_are_rejected(drop: str) -> None:
    headers, body = aliyun_callback(
        upload_complete(), callback_url=CALLBACK_URL, private_key=PRIVATE_KEY
    )
    del headers[drop]
    with pytest.raises(CallbackRejected):
        await callback_provider().parse_callback(headers, body)


async def test_callback_needs_key_and_url_configured() -> None:
    headers, body = aliyun_callback(
        upload_complete(), callback_url=CALLBACK_URL, private_key=PRIVATE_KEY
    )
    with pytest.raises(ConfigError):
        await AliyunVodProvider(AliyunVodConfig()).parse_callback(headers, body)


async def signed_event(event: dict[str, Any]) -> Any:
    headers, body = aliyun_callback(event, callback_url=CALLBACK_URL, private_key=PRIVATE_KEY)
    return await callback_provider().parse_callback(headers, body)


async def test_transcode_complete_callbacks() -> None:
    streams = [
        {"Status": "success", "Bitrate": "400", "Duration": "61.5", "FileUrl": "https://v/ld.m3u8"},
        {
            "Status": "success",
            "Bitrate": "2000",
            "Duration": "61.6",
            "FileUrl": "https://v/hd.m3u8",
        },
    ]
    done = await signed_event(
        {
            "EventType": "TranscodeComplete",
            "VideoId": VIDEO_ID,
            "Status": "success",
            "EventTime": "t1",
            "StreamInfos": streams,
        }
    )
    assert done.kind is VodEventKind.TRANSCODE_FINISHED
    assert done.play_url == "https://v/hd.m3u8" and done.duration == 61.6
    failed = await signed_event(
        {
            "EventType": "TranscodeComplete",
            "VideoId": VIDEO_ID,
            "Status": "fail",
            "EventTime": "t2",
            "ErrorCode": "X",
            "ErrorMessage": "bad source",
        }
    )
    assert failed.kind is VodEventKind.TRANSCODE_FAILED and "bad source" in failed.error
    upload_failed = await signed_event(upload_complete(Status="fail"))
    assert upload_failed.kind is VodEventKind.UPLOAD_FAILED


async def test_stream_transcode_complete() -> None:
    stream = {
        "EventType": "StreamTranscodeComplete",
        "VideoId": VIDEO_ID,
        "Status": "success",
        "JobId": "job-1",
        "Duration": "61.5",
        "FileUrl": "https://v/sd.mp4",
    }
    event = await signed_event(stream)
    assert event.kind is VodEventKind.TRANSCODE_FINISHED and event.play_url == "https://v/sd.mp4"
    assert event.event_id == f"aliyun:StreamTranscodeComplete:{VIDEO_ID}:job-1"
    assert await signed_event({**stream, "Status": "fail"}) is None
    assert await signed_event({"EventType": "SnapshotComplete", "VideoId": VIDEO_ID}) is None


@pytest.mark.parametrize("event", [[1], {"EventType": "FileUploadComplete", "Status": "success"}])
async def test_malformed_authentic_callback_is_a_400(event: Any) -> None:
    headers, _ = aliyun_callback({}, callback_url=CALLBACK_URL, private_key=PRIVATE_KEY)
    with pytest.raises(DeserializationError):
        await callback_provider().parse_callback(headers, json.dumps(event).encode())
