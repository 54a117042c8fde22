"""Offline stand-ins for the Tencent and Aliyun VOD APIs, for tests.

Each stub is a threaded HTTP server on ``127.0.0.1`` (random port) that answers the
way the real API does and checks every request's signature by recomputing it
(TC3-HMAC-SHA256 for Tencent, ACS3-HMAC-SHA256 for Aliyun), so a client holding
the wrong secret gets the provider's own authentication error.

    with TencentVodStub() as stub:
        stub.add_media("5285890781763144364", name="demo", duration=61.5)
        provider = TencentVodProvider(stub.config(play_key="k"))
        info = await provider.media_info("5285890781763144364")

Knobs: ``stub.fail(action, code)`` makes one action return a provider error,
``stub.fail(action, code, times=2)`` only its next two calls,
``stub.outage_status = 503`` answers every request with that HTTP status,
``stub.delay_seconds`` stalls replies, ``stub.stop()`` leaves the port closed.
``stub.requests`` records what arrived. The SDKs read HTTP(S)_PROXY from the
environment: clear those variables in tests (``PROXY_ENV_VARS``).

The module also builds callback bodies/headers in the providers' formats.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from app.settings import AliyunVodConfig, TencentVodConfig
from app.vod.signing import aliyun_callback_signature

__all__ = [
    "PROXY_ENV_VARS",
    "AliyunVodStub",
    "StubRequest",
    "TencentVodStub",
    "aliyun_callback",
    "tencent_new_file_upload",
    "tencent_procedure_finished",
]

PROXY_ENV_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@dataclass
class StubRequest:
    action: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """Keeps every live connection so ``close_connections`` can cut them (HTTP/1.1)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # a load generator opens many connections at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._live_lock:
            self._live.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.discard(request)

    def close_connections(self) -> None:
        with self._live_lock:
            live, self._live = list(self._live), set()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closes its socket before a delayed reply: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _StubBase:
    """Threaded HTTP server plumbing shared by both stubs."""

    provider: ClassVar[str]

    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        self.errors: dict[str, tuple[str, str, int | None]] = {}
        self.failures_left: dict[str, int] = {}  # actions failing a limited number of times
        self.outage_status: int | None = None
        self.delay_seconds: float = 0.0
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut kept-alive connections: further calls get "connection refused"."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> _StubBase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        action: str,
        code: str,
        message: str = "",
        status: int | None = None,
        *,
        times: int | None = None,
    ) -> None:
        """Make ``action`` answer with the provider error ``code`` until ``clear_failures``
        or, with ``times``, for its next ``times`` calls only."""
        self.errors[action] = (code, message or f"stub error {code}", status)
        if times is not None:
            self.failures_left[action] = times
        else:
            self.failures_left.pop(action, None)

    def clear_failures(self) -> None:
        self.errors.clear()
        self.failures_left.clear()
        self.outage_status = None

    def _failure(self, action: str) -> tuple[str, str, int | None] | None:
        """The injected error for this call of ``action``, counting down limited ones."""
        failure = self.errors.get(action)
        if failure is None:
            return None
        left = self.failures_left.get(action)
        if left is not None:
            if left <= 1:
                del self.errors[action], self.failures_left[action]
            else:
                self.failures_left[action] = left - 1
        return failure

    def calls(self, action: str) -> list[StubRequest]:
        return [r for r in self.requests if r.action == action]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the providers' API gateways do: SDK clients reuse connections.
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without TCP_NODELAY the second one
            # waits for the client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = stub._dispatch(self.command, self.path, headers, body)
                if stub.delay_seconds:
                    time.sleep(stub.delay_seconds)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_PUT = do_OPTIONS = do_POST  # OPTIONS: a browser's CORS preflight

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        if self.outage_status is not None:
            return _Reply(self.outage_status, b"<html>upstream unavailable</html>", "text/html")
        return self._handle(method, path, headers, body)

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        raise NotImplementedError


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _b64json(value: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


# -- Tencent --------------------------------------------------------------------------

_TC3 = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[\w-]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[\w;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)


class TencentVodStub(_StubBase):
    """Answers like ``vod.tencentcloudapi.com``: HTTP 200, ``{"Response": {...}}``."""

    provider = "tencent"

    def __init__(
        self,
        secret_id: str = "AKIDstubSecretId0000",
        secret_key: str = "stubSecretKey0000",
        *,
        max_skew_seconds: int = 300,
    ) -> None:
        super().__init__()
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.max_skew_seconds = max_skew_seconds
        self.media: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.tasks: list[dict[str, Any]] = []
        # Reliable-callback queue: handle -> event body, until ConfirmEvents.
        self.events: dict[str, dict[str, Any]] = {}
        # Exactly "application/json": the SDK skips error checks for anything else.
        self.content_type = "application/json"

    def __enter__(self) -> TencentVodStub:
        self.start()
        return self

    def config(self, **overrides: Any) -> TencentVodConfig:
        """A ``TencentVodConfig`` aimed at this stub with its credentials."""
        values: dict[str, Any] = {
            "secret_id": self.secret_id,
            "secret_key": self.secret_key,
            "endpoint": self.endpoint,
            "protocol": "http",
            "timeout_seconds": 5,
        }
        return TencentVodConfig(**{**values, **overrides})

    def add_media(
        self,
        file_id: str,
        *,
        name: str = "demo",
        duration: float = 61.5,
        cover_url: str = "https://1500000000.vod2.myqcloud.com/abc/def/cover.jpg",
        media_url: str = "https://1500000000.vod2.myqcloud.com/abc/def/demo.mp4",
        status: str = "Normal",
        adaptive_url: str | None = None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "FileId": file_id,
            "BasicInfo": {
                "Name": name,
                "CoverUrl": cover_url,
                "MediaUrl": media_url,
                "Type": "mp4",
                "Status": status,
            },
            "MetaData": {"Duration": duration, "Width": 1920, "Height": 1080},
            "TranscodeInfo": None,
            "AdaptiveDynamicStreamingInfo": None,
        }
        if adaptive_url:
            item["AdaptiveDynamicStreamingInfo"] = {
                "StreamingInfoSet": [{"Definition": 10, "Package": "HLS", "Url": adaptive_url}]
            }
        self.media[file_id] = item
        return item

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        action = headers.get("x-tc-action", "")
        params = json.loads(body or b"{}")
        self.requests.append(StubRequest(action, headers, {}, body, params))
        auth_error = self.verify(method, headers, body)
        if auth_error:
            return self._error(*auth_error)
        failure = self._failure(action)
        if failure is not None:
            return self._error(failure[0], failure[1])
        handler = {
            "DescribeMediaInfos": self._describe_media_infos,
            "DeleteMedia": self._delete_media,
            "ProcessMedia": self._process_media,
            "PullEvents": self._pull_events,
            "ConfirmEvents": self._confirm_events,
        }.get(action)
        if handler is None:
            return self._error("InvalidAction", f"action {action} is not supported by the stub")
        return handler(params)

    def queue_event(self, body: Mapping[str, Any]) -> str:
        """Put an event (a callback body, e.g. ``tencent_new_file_upload(...)``) in the
        reliable-callback queue; returns its EventHandle."""
        handle = uuid.uuid4().hex
        self.events[handle] = {**body, "EventHandle": handle}
        return handle

    def _describe_media_infos(self, params: dict[str, Any]) -> _Reply:
        ids = [str(i) for i in params.get("FileIds") or []]
        return self._ok(
            {
                "MediaInfoSet": [self.media[i] for i in ids if i in self.media],
                "NotExistFileIdSet": [i for i in ids if i not in self.media],
            }
        )

    def _delete_media(self, params: dict[str, Any]) -> _Reply:
        file_id = str(params.get("FileId") or "")
        if self.media.pop(file_id, None) is None:
            return self._error("ResourceNotFound.FileNotExist", "The file does not exist.")
        self.deleted.append(file_id)
        return self._ok({})

    def _process_media(self, params: dict[str, Any]) -> _Reply:
        file_id = str(params.get("FileId") or "")
        if file_id not in self.media:
            return self._error("ResourceNotFound.FileNotExist", "The file does not exist.")
        task_set = (params.get("MediaProcessTask") or {}).get("TranscodeTaskSet") or []
        if not task_set or not all(isinstance(t.get("Definition"), int) for t in task_set):
            return self._error("InvalidParameterValue.Definition", "Invalid Definition.")
        task_id = f"1500000000-procedurev2-{uuid.uuid4().hex}"
        self.tasks.append({"TaskId": task_id, **params})
        return self._ok({"TaskId": task_id})

    def _pull_events(self, params: dict[str, Any]) -> _Reply:
        # The real call waits up to 5 s for an event; the stub answers at once.
        return self._ok({"EventSet": list(self.events.values())[:16]})

    def _confirm_events(self, params: dict[str, Any]) -> _Reply:
        handles = params.get("EventHandles")
        if not isinstance(handles, list) or not handles:
            return self._error("InvalidParameter.EventHandles", "EventHandles is required.")
        for handle in handles:
            self.events.pop(str(handle), None)
        return self._ok({})

    def verify(
        self, method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, str] | None:
        """Recompute the TC3-HMAC-SHA256 signature; (code, message) when it is wrong."""
        match = _TC3.fullmatch(headers.get("authorization", ""))
        if match is None:
            return "AuthFailure.InvalidAuthorization", "Authorization header is malformed"
        if match["id"] != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found"
        timestamp = headers.get("x-tc-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.max_skew_seconds:
            return "AuthFailure.SignatureExpire", "The signature has expired"
        signed = match["signed"].split(";")
        if {"content-type", "host"} - set(signed) or any(h not in headers for h in signed):
            return "AuthFailure.InvalidAuthorization", "content-type and host must be signed"
        canonical = "\n".join(
            [
                method,
                "/",
                "",
                "".join(f"{h}:{headers[h].strip().lower()}\n" for h in signed),
                match["signed"],
                _sha256_hex(body),
            ]
        )
        scope = f"{match['date']}/{match['service']}/tc3_request"
        string_to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{_sha256_hex(canonical.encode())}"
        key = _hmac256(("TC3" + self.secret_key).encode(), match["date"])
        key = _hmac256(_hmac256(key, match["service"]), "tc3_request")
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
        if date != match["date"] or not hmac.compare_digest(expected, match["sig"]):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated"
        return None

    def _ok(self, fields: dict[str, Any]) -> _Reply:
        payload = {"Response": {**fields, "RequestId": str(uuid.uuid4())}}
        return _Reply(200, json.dumps(payload).encode(), self.content_type)

    def _error(self, code: str, message: str) -> _Reply:
        payload = {
            "Response": {
                "Error": {"Code": code, "Message": message},
                "RequestId": str(uuid.uuid4()),
            }
        }
        return _Reply(200, json.dumps(payload).encode(), self.content_type)


def tencent_new_file_upload(
    file_id: str,
    *,
    duration: float = 61.5,
    media_url: str = "https://1500000000.vod2.myqcloud.com/abc/def/demo.mp4",
    cover_url: str = "https://1500000000.vod2.myqcloud.com/abc/def/cover.jpg",
    source_context: str | None = None,
) -> bytes:
    """A ``NewFileUpload`` event body."""
    basic: dict[str, Any] = {
        "Name": "demo",
        "MediaUrl": media_url,
        "CoverUrl": cover_url,
        "Type": "mp4",
    }
    if source_context is not None:
        basic["SourceInfo"] = {"SourceType": "Upload", "SourceContext": source_context}
    return json.dumps(
        {
            "EventHandle": uuid.uuid4().hex,
            "EventType": "NewFileUpload",
            "FileUploadEvent": {
                "FileId": file_id,
                "MediaBasicInfo": basic,
                "ProcedureTaskId": "",
                "MetaData": {"Duration": duration},
            },
        }
    ).encode()


def tencent_procedure_finished(
    file_id: str,
    task_id: str = "1500000000-procedurev2-abc123",
    *,
    err_code: int = 0,
    hls_url: str = "https://1500000000.vod2.myqcloud.com/abc/def/adp.10.m3u8",
    duration: float = 61.5,
) -> bytes:
    """A ``ProcedureStateChanged`` event body (``Status: FINISH``) with one HLS output."""
    ads_status = "SUCCESS" if err_code == 0 else "FAIL"
    return json.dumps(
        {
            "EventType": "ProcedureStateChanged",
            "ProcedureStateChangeEvent": {
                "TaskId": task_id,
                "Status": "FINISH",
                "ErrCode": err_code,
                "Message": "" if err_code == 0 else "transcode failed",
                "FileId": file_id,
                "FileUrl": "https://1500000000.vod2.myqcloud.com/abc/def/demo.mp4",
                "MetaData": {"Duration": duration},
                "MediaProcessResultSet": [
                    {
                        "Type": "AdaptiveDynamicStreaming",
                        "AdaptiveDynamicStreamingTask": {
                            "Status": ads_status,
                            "ErrCode": err_code,
                            "Output": {"Definition": 10, "Url": hls_url},
                        },
                    }
                ],
            },
        }
    ).encode()


# -- Aliyun ---------------------------------------------------------------------------

_ACS3 = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<ak>[^,]+),SignedHeaders=(?P<signed>[\w;-]+),"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
_MUST_SIGN = {"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce"}


class AliyunVodStub(_StubBase):
    """Answers like ``vod.<region>.aliyuncs.com``: flat JSON; errors are 4xx/5xx + Code."""

    provider = "aliyun"

    def __init__(
        self,
        access_key_id: str = "LTAIstubAccessKeyId",
        access_key_secret: str = "stubAccessKeySecret",
        *,
        max_skew_seconds: int = 900,
    ) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.max_skew_seconds = max_skew_seconds
        self.videos: dict[str, dict[str, Any]] = {}
        self.play_infos: dict[str, list[dict[str, Any]]] = {}
        self.deleted: list[str] = []
        self.transcode_jobs: list[dict[str, str]] = []

    def __enter__(self) -> AliyunVodStub:
        self.start()
        return self

    def config(self, **overrides: Any) -> AliyunVodConfig:
        """An ``AliyunVodConfig`` aimed at this stub with its credentials."""
        values: dict[str, Any] = {
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "endpoint": self.endpoint,
            "protocol": "http",
            "timeout_seconds": 5,
        }
        return AliyunVodConfig(**{**values, **overrides})

    def add_video(
        self,
        video_id: str,
        *,
        title: str = "demo",
        duration: float = 61.5,
        cover_url: str = "https://vod.example.com/cover.jpg",
        status: str = "Normal",
        play_urls: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """Register a video; ``play_urls`` maps stream URL -> bitrate (kbps)."""
        video = {
            "VideoId": video_id,
            "Title": title,
            "Duration": duration,
            "CoverURL": cover_url,
            "Status": status,
        }
        self.videos[video_id] = video
        urls = play_urls or {f"https://vod.example.com/{video_id}/sd.m3u8": 800}
        self.play_infos[video_id] = [
            {
                "PlayURL": url,
                "Bitrate": str(rate),
                "Definition": "HD",
                "Format": "m3u8",
                "Duration": str(duration),
                "Status": "Normal",
                "StreamType": "video",
            }
            for url, rate in urls.items()
        ]
        return video

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        action = headers.get("x-acs-action") or query.get("Action", "")
        self.requests.append(StubRequest(action, headers, query, body, dict(query)))
        auth_error = self.verify(method, parts.path, parts.query, headers, body)
        if auth_error:
            return self._error(*auth_error)
        failure = self._failure(action)
        if failure is not None:
            code, message, status = failure
            return self._error(status or 400, code, message)
        handler = {
            "CreateUploadVideo": self._create_upload_video,
            "RefreshUploadVideo": self._refresh_upload_video,
            "GetVideoInfo": self._get_video_info,
            "GetPlayInfo": self._get_play_info,
            "DeleteVideo": self._delete_video,
            "SubmitTranscodeJobs": self._submit_transcode_jobs,
        }.get(action)
        if handler is None:
            return self._error(404, "InvalidAction.NotFound", f"{action} is not supported")
        return handler(query)

    def verify(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, str] | None:
        """Recompute the ACS3-HMAC-SHA256 signature; (status, code, message) when wrong."""
        match = _ACS3.fullmatch(headers.get("authorization", ""))
        if match is None:
            return 400, "IncompleteSignature", "The request signature does not conform to standards"
        if match["ak"] != self.access_key_id:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if headers.get("x-acs-content-sha256") != _sha256_hex(body):
            return 400, "InvalidContentSHA256", "x-acs-content-sha256 does not match the body"
        if not self._fresh(headers.get("x-acs-date", "")):
            return 400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired"
        signed = match["signed"].split(";")
        if _MUST_SIGN - set(signed) or any(h not in headers for h in signed):
            return 400, "IncompleteSignature", "Required headers are not signed"
        pairs = sorted(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        canonical_query = "&".join(
            f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}" for k, v in pairs
        )
        canonical = "\n".join(
            [
                method,
                path or "/",
                canonical_query,
                "".join(f"{h}:{headers[h].strip()}\n" for h in signed),
                match["signed"],
                _sha256_hex(body),
            ]
        )
        string_to_sign = f"ACS3-HMAC-SHA256\n{_sha256_hex(canonical.encode())}"
        expected = hmac.new(
            self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            return (
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        return None

    def _fresh(self, stamp: str) -> bool:
        try:
            sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return False
        return abs(time.time() - sent.timestamp()) <= self.max_skew_seconds

    def _create_upload_video(self, query: dict[str, str]) -> _Reply:
        video_id = uuid.uuid4().hex
        self.add_video(video_id, title=query.get("Title", ""), status="Uploading")
        return self._upload_reply(video_id)

    def _refresh_upload_video(self, query: dict[str, str]) -> _Reply:
        video_id = query.get("VideoId", "")
        if video_id not in self.videos:
            return self._error(404, "InvalidVideo.NotFound", "The video does not exist.")
        return self._upload_reply(video_id)

    def _delete_video(self, query: dict[str, str]) -> _Reply:
        ids = [i for i in query.get("VideoIds", "").split(",") if i]
        if not ids:
            return self._error(400, "MissingVideoIds", "VideoIds is mandatory for this action.")
        missing = [i for i in ids if i not in self.videos]
        for video_id in ids:
            if self.videos.pop(video_id, None) is not None:
                self.play_infos.pop(video_id, None)
                self.deleted.append(video_id)
        return self._ok({"NonExistVideoIds": missing, "ForbiddenVideoIds": []})

    def _submit_transcode_jobs(self, query: dict[str, str]) -> _Reply:
        video_id, group = query.get("VideoId", ""), query.get("TemplateGroupId", "")
        if video_id not in self.videos:
            return self._error(404, "InvalidVideo.NotFound", "The video does not exist.")
        if not group:
            return self._error(400, "MissingTemplateGroupId", "TemplateGroupId is mandatory.")
        task_id = uuid.uuid4().hex
        self.transcode_jobs.append({"VideoId": video_id, "TemplateGroupId": group, "Id": task_id})
        return self._ok({"TranscodeTaskId": task_id, "TranscodeJobs": {"TranscodeJob": []}})

    def _upload_reply(self, video_id: str) -> _Reply:
        expire = datetime.fromtimestamp(time.time() + 3000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._ok(
            {
                "VideoId": video_id,
                "UploadAddress": _b64json(
                    {
                        "Endpoint": "https://oss-cn-shanghai.aliyuncs.com",
                        "Bucket": "outin-stub",
                        "FileName": f"sv/{video_id}.mp4",
                    }
                ),
                "UploadAuth": _b64json(
                    {
                        "AccessKeyId": "STS.stub",
                        "AccessKeySecret": "stub",
                        "SecurityToken": "stub-token",
                        "Expiration": "3600",
                        "ExpireUTCTime": expire,
                        "Region": "cn-shanghai",
                    }
                ),
            }
        )

    def _get_video_info(self, query: dict[str, str]) -> _Reply:
        video = self.videos.get(query.get("VideoId", ""))
        if video is None:
            return self._error(404, "InvalidVideo.NotFound", "The video does not exist.")
        return self._ok({"Video": video})

    def _get_play_info(self, query: dict[str, str]) -> _Reply:
        video_id = query.get("VideoId", "")
        if video_id not in self.videos:
            return self._error(404, "InvalidVideo.NotFound", "The video does not exist.")
        # The real service signs the URLs; the stub only marks what it was asked for.
        config = json.loads(query.get("PlayConfig") or "{}")
        mark = f"auth_timeout={query.get('AuthTimeout', '')}"
        if "PreviewTime" in config:
            mark += f"&preview_time={config['PreviewTime']}"
        infos = [
            {**info, "PlayURL": f"{info['PlayURL']}?{mark}"}
            for info in self.play_infos.get(video_id, [])
        ]
        video = self.videos[video_id]
        return self._ok(
            {"VideoBase": {**video, "MediaType": "video"}, "PlayInfoList": {"PlayInfo": infos}}
        )

    def _ok(self, fields: dict[str, Any]) -> _Reply:
        return _Reply(200, json.dumps({"RequestId": str(uuid.uuid4()), **fields}).encode())

    def _error(self, status: int, code: str, message: str) -> _Reply:
        payload = {
            "RequestId": str(uuid.uuid4()),
            "HostId": "vod.cn-shanghai.aliyuncs.com",
            "Code": code,
            "Message": message,
        }
        return _Reply(status, json.dumps(payload).encode())


def aliyun_callback(
    event: Mapping[str, Any],
    *,
    callback_url: str,
    private_key: str,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of an authenticated Aliyun HTTP callback carrying ``event``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-VOD-TIMESTAMP": ts,
        "X-VOD-SIGNATURE": aliyun_callback_signature(callback_url, ts, private_key),
    }
    return headers, json.dumps(dict(event)).encode()
