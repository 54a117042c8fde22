"""TencentVodProvider against the TC3-verifying stub."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from typing import Any

import pytest
from pydantic import SecretStr

from app.sandbox.vod import TencentVodStub, tencent_new_file_upload, tencent_procedure_finished
from app.settings import TencentVodConfig
from app.vod import (
    CallbackRejected,
    MediaStatus,
    TencentVodProvider,
    VodEventKind,
)
from luser_common import (
    ConfigError,
    DeserializationError,
    ExternalServiceError,
    NetworkError,
    NotFound,
    ValidationError,
)

FILE_ID = "5285890781763144364"
KEY = "24FEQmTzro4V5u3D5epW"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


# -- upload credentials ---------------------------------------------------------------


async def test_upload_signature_decodes_and_verifies(tencent_stub: TencentVodStub) -> None:
    config = tencent_stub.config(procedure="LongVideoPreset", sub_app_id=1500000001)
    provider = TencentVodProvider(config)
    before = int(time.time())
    creds = await provider.upload_credentials("标题", "demo.mp4", source_context="17")
    raw = base64.b64decode(creds.signature or "")
    digest, original = raw[:20], raw[20:]
    expected = hmac.new(tencent_stub.secret_key.encode(), original, hashlib.sha1).digest()
    assert hmac.compare_digest(digest, expected)
    params = dict(urllib.parse.parse_qsl(original.decode()))
    assert params["secretId"] == tencent_stub.secret_id
    assert params["procedure"] == "LongVideoPreset"
    assert params["vodSubAppId"] == "1500000001"
    assert params["sourceContext"] == "17"
    assert "oneTimeValid" not in params  # single-use signatures are not switched on
    issued = int(params["currentTimeStamp"])
    assert before <= issued <= int(time.time())
    assert int(params["expireTime"]) - issued == config.upload_signature_ttl_seconds
    assert int(creds.expires_at.timestamp()) == int(params["expireTime"])
    assert creds.media_id is None and creds.provider == "tencent"
    assert tencent_stub.requests == []  # signed locally, no API call


async def test_oversized_source_context_is_refused(tencent_stub: TencentVodStub) -> None:
    provider = TencentVodProvider(tencent_stub.config())
    with pytest.raises(ValidationError):
        await provider.upload_credentials("t", "a.mp4", source_context="x" * 251)


async def test_upload_signature_needs_credentials() -> None:
    with pytest.raises(ConfigError):
        await TencentVodProvider(TencentVodConfig()).upload_credentials("t", "a.mp4")


# -- media info -----------------------------------------------------------------------


async def test_media_info_reads_the_stub(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID, name="演示", duration=61.5)
    provider = TencentVodProvider(tencent_stub.config(sub_app_id=1500000001))
    info = await provider.media_info(FILE_ID)
    assert info.media_id == FILE_ID and info.title == "演示" and info.duration == 61.5
    assert info.status is MediaStatus.READY
    assert info.cover_url and info.play_source and info.play_source.endswith("demo.mp4")
    (request,) = tencent_stub.calls("DescribeMediaInfos")
    assert request.params == {"FileIds": [FILE_ID], "SubAppId": 1500000001}
    assert request.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=")
    assert request.headers["content-type"] == "application/json"


async def test_media_info_prefers_adaptive_stream_and_maps_blocked(
    tencent_stub: TencentVodStub,
) -> None:
    tencent_stub.add_media(FILE_ID, status="Forbidden", adaptive_url="https://d.example/a/x.m3u8")
    info = await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)
    assert info.status is MediaStatus.BLOCKED and info.provider_status == "Forbidden"
    assert info.play_source == "https://d.example/a/x.m3u8"


async def test_unknown_media_is_not_found(tencent_stub: TencentVodStub) -> None:
    with pytest.raises(NotFound) as caught:
        await TencentVodProvider(tencent_stub.config()).media_info("missing")
    assert caught.value.details["code"] == "ResourceNotFound.FileNotExist"


async def test_sdk_call_runs_off_the_event_loop(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID)
    provider = TencentVodProvider(tencent_stub.config())
    client = provider._sdk()
    threads: list[int] = []
    original = client.call_json

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    client.call_json = recording
    await provider.media_info(FILE_ID)
    assert threads and threads[0] != threading.get_ident()


# -- signatures and errors ------------------------------------------------------------


async def test_wrong_secret_key_is_rejected_by_the_stub(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID)
    provider = TencentVodProvider(tencent_stub.config(secret_key="not-the-key"))
    with pytest.raises(ExternalServiceError) as caught:
        await provider.media_info(FILE_ID)
    assert caught.value.status_code == 502
    assert caught.value.details["code"] == "AuthFailure.SignatureFailure"


async def test_unknown_secret_id_is_rejected(tencent_stub: TencentVodStub) -> None:
    provider = TencentVodProvider(tencent_stub.config(secret_id="AKIDsomeoneElse"))
    with pytest.raises(ExternalServiceError) as caught:
        await provider.media_info(FILE_ID)
    assert caught.value.details["code"] == "AuthFailure.SecretIdNotFound"


async def test_stub_signature_check_detects_a_tampered_body(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID)
    await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)
    (request,) = tencent_stub.requests
    assert tencent_stub.verify("POST", request.headers, request.body) is None
    tampered = json.dumps({"FileIds": ["other"]}).encode()
    assert tencent_stub.verify("POST", request.headers, tampered) == (
        "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated",
    )


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_provider_error_code_becomes_external_service_error(
    tencent_stub: TencentVodStub, content_type: str
) -> None:
    # The charset variant is the SDK pitfall: it would parse the error as an empty success.
    tencent_stub.content_type = content_type
    tencent_stub.fail("DescribeMediaInfos", "RequestLimitExceeded", "too many requests")
    with pytest.raises(ExternalServiceError) as caught:
        await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)
    details = caught.value.details
    assert details["code"] == "RequestLimitExceeded" and details["provider"] == "tencent"
    assert details["request_id"]
    assert "RequestLimitExceeded" in caught.value.message


async def test_http_outage_is_a_502(tencent_stub: TencentVodStub) -> None:
    tencent_stub.outage_status = 503
    with pytest.raises(ExternalServiceError) as caught:
        await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)
    assert caught.value.details["code"] == "ServerNetworkError"
    assert "html" not in str(caught.value.details)


async def test_unreachable_provider_is_a_503(tencent_stub: TencentVodStub) -> None:
    provider = TencentVodProvider(tencent_stub.config())
    tencent_stub.stop()
    with pytest.raises(NetworkError) as caught:
        await provider.media_info(FILE_ID)
    assert caught.value.status_code == 503 and caught.value.retryable
    assert caught.value.details == {"provider": "tencent", "code": "ClientNetworkError"}


async def test_slow_provider_times_out_as_unreachable(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID)
    tencent_stub.delay_seconds = 1.0
    provider = TencentVodProvider(tencent_stub.config(timeout_seconds=0.2))
    with pytest.raises(NetworkError):
        await provider.media_info(FILE_ID)


async def test_missing_credentials_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await TencentVodProvider(TencentVodConfig(endpoint="127.0.0.1:9")).media_info(FILE_ID)


# -- play URLs ------------------------------------------------------------------------


async def test_preview_url_carries_exper_and_verifies(tencent_stub: TencentVodStub) -> None:
    tencent_stub.add_media(FILE_ID, media_url="https://1500.vod2.myqcloud.com/ab/cd/v.mp4")
    config = tencent_stub.config(play_key=KEY, play_domain="play.example.com", play_rlimit=3)
    before = int(time.time())
    signed = await TencentVodProvider(config).play_url(FILE_ID, preview_seconds=30, ttl=600)
    parts = urllib.parse.urlsplit(signed.url)
    assert parts.netloc == "play.example.com" and parts.path == "/ab/cd/v.mp4"
    assert [p.split("=")[0] for p in parts.query.split("&")] == [
        "t",
        "exper",
        "rlimit",
        "us",
        "sign",
    ]
    q = query_of(signed.url)
    assert q["exper"] == "30" and q["rlimit"] == "3"
    assert q["sign"] == md5(KEY + "/ab/cd/" + q["t"] + "30" + "3" + q["us"])
    expiry = int(q["t"], 16)
    assert before + 600 <= expiry <= int(time.time()) + 600
    assert int(signed.expires_at.timestamp()) == expiry
    assert signed.preview and signed.preview_seconds == 30 and signed.preview_enforced


async def test_full_play_of_a_url_needs_no_api_call(tencent_stub: TencentVodStub) -> None:
    provider = TencentVodProvider(tencent_stub.config(play_key=KEY, play_rlimit=0))
    signed = await provider.play_url("https://d.example.com/x/y/z.m3u8")
    q = query_of(signed.url)
    assert set(q) == {"t", "us", "sign"}
    assert q["sign"] == md5(KEY + "/x/y/" + q["t"] + q["us"])
    assert not signed.preview and tencent_stub.requests == []


async def test_preview_without_play_key_is_refused_full_play_stays_plain() -> None:
    provider = TencentVodProvider(TencentVodConfig())
    with pytest.raises(ConfigError):
        await provider.play_url("https://d.example.com/a/b.mp4", preview_seconds=10)
    plain = await provider.play_url("https://d.example.com/a/b.mp4")
    assert plain.url == "https://d.example.com/a/b.mp4"


# -- callbacks ------------------------------------------------------------------------

TOKEN = "cb-token-0123456789"


def callback_provider() -> TencentVodProvider:
    return TencentVodProvider(TencentVodConfig(callback_token=SecretStr(TOKEN)))


async def test_upload_callback_is_normalised_and_replays_keep_the_id() -> None:
    provider = callback_provider()
    body = tencent_new_file_upload(FILE_ID, duration=12.5, source_context="17")
    event = await provider.parse_callback({}, body, {"token": TOKEN})
    assert event is not None
    assert event.kind is VodEventKind.UPLOAD_FINISHED and event.media_id == FILE_ID
    assert event.duration == 12.5 and event.source_context == "17"
    assert event.play_url and event.cover_url and event.raw["EventType"] == "NewFileUpload"
    # a redelivery (new EventHandle) is recognisably the same event
    again = await provider.parse_callback({}, tencent_new_file_upload(FILE_ID), {"token": TOKEN})
    assert again is not None and again.event_id == event.event_id


async def test_procedure_finished_callback() -> None:
    body = tencent_procedure_finished(FILE_ID, "task-1", hls_url="https://d/a/adp.m3u8")
    event = await callback_provider().parse_callback({}, body, {"token": TOKEN})
    assert event is not None and event.kind is VodEventKind.TRANSCODE_FINISHED
    assert event.play_url == "https://d/a/adp.m3u8" and event.duration == 61.5
    assert event.event_id == f"tencent:ProcedureStateChanged:{FILE_ID}:task-1"


async def test_failed_procedure_callback() -> None:
    body = tencent_procedure_finished(FILE_ID, "task-2", err_code=40000)
    event = await callback_provider().parse_callback({}, body, {"token": TOKEN})
    assert event is not None and event.kind is VodEventKind.TRANSCODE_FAILED
    assert event.play_url is None and event.error and "40000" in event.error


async def test_irrelevant_events_are_ignored() -> None:
    provider = callback_provider()
    processing = json.loads(tencent_procedure_finished(FILE_ID))
    processing["ProcedureStateChangeEvent"]["Status"] = "PROCESSING"
    assert (
        await provider.parse_callback({}, json.dumps(processing).encode(), {"token": TOKEN}) is None
    )
    deleted = json.dumps({"EventType": "FileDeleted", "FileDeleteEvent": {"FileIdSet": [FILE_ID]}})
    assert await provider.parse_callback({}, deleted.encode(), {"token": TOKEN}) is None


@pytest.mark.parametrize("query", [{}, {"token": ""}, {"token": "guess"}, {"token": TOKEN + "x"}])
async def test_forged_callbacks_are_rejected(query: dict[str, str]) -> None:
    with pytest.raises(CallbackRejected) as caught:
        await callback_provider().parse_callback({}, tencent_new_file_upload(FILE_ID), query)
    assert caught.value.status_code == 403 and caught.value.code == "VOD_CALLBACK_REJECTED"


async def test_callback_without_configured_token_fails_closed() -> None:
    with pytest.raises(ConfigError):
        await TencentVodProvider(TencentVodConfig()).parse_callback(
            {}, tencent_new_file_upload(FILE_ID), {"token": ""}
        )


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"EventType": "NewFileUpload"}'])
async def test_malformed_authentic_callback_is_a_400(body: bytes) -> None:
    with pytest.raises(DeserializationError):
        await callback_provider().parse_callback({}, body, {"token": TOKEN})


async def test_a_proxy_from_the_environment_is_still_used(
    tencent_stub: TencentVodStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without proxy variables the client skips requests' per-call environment scan;
    # with one set, calls must go through it (here: a closed port, so they fail).
    tencent_stub.add_media(FILE_ID)
    assert (await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)).title
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(NetworkError):
        await TencentVodProvider(tencent_stub.config()).media_info(FILE_ID)
