"""What the sandbox VOD stand-ins need to accept an upload: the credential checks the
real upload targets make, the uploaded file's length, and the "upload finished"
notification a provider sends afterwards.

- Tencent: the client-side upload *signature* (``base64(HMAC-SHA1(key, original) +
  original)``) is checked as Tencent's upload service checks it: the HMAC, the
  ``secretId``, the ``expireTime``. The real flow (ApplyUpload, a COS PUT,
  CommitUpload) is simplified to one request carrying the file.
- Aliyun: the upload is a PUT of the object named by ``UploadAddress``, signed with the
  STS credentials of ``UploadAuth`` the way OSS checks it (``Authorization: OSS
  <AccessKeyId>:<signature>``, header signature version 1, plus
  ``x-oss-security-token``); path-style (``/<Bucket>/<FileName>``) because the stand-in
  has no bucket subdomains.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
import urllib.parse
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

__all__ = [
    "UploadRefused",
    "check_oss_put",
    "check_tencent_signature",
    "mp4_duration",
    "oss_signature",
]

OSS_MAX_SKEW_SECONDS = 900


class UploadRefused(Exception):
    """An upload the real target would refuse: (HTTP status, provider code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_tencent_signature(
    signature: str, *, secret_id: str, secret_key: str, now: float | None = None
) -> dict[str, str]:
    """The signed parameters of a Tencent upload signature; UploadRefused when the
    signature is malformed, not ours, forged or expired."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        raise UploadRefused(403, "InvalidSignature", "signature is not base64") from None
    digest, original = raw[:20], raw[20:]
    expected = hmac.new(secret_key.encode(), original, hashlib.sha1).digest()
    if len(raw) <= 20 or not hmac.compare_digest(digest, expected):
        raise UploadRefused(403, "InvalidSignature", "signature check failed")
    params = dict(urllib.parse.parse_qsl(original.decode("utf-8", "replace")))
    if params.get("secretId") != secret_id:
        raise UploadRefused(403, "InvalidSignature", "secretId is not this account's")
    expire = params.get("expireTime", "")
    if not expire.isdigit() or int(expire) < (time.time() if now is None else now):
        raise UploadRefused(403, "SignatureExpired", "signature has expired")
    return params


def oss_signature(secret: str, method: str, resource: str, headers: Mapping[str, str]) -> str:
    """OSS header signature version 1 over ``headers`` (lower-case names)."""
    oss_headers = "".join(
        f"{name}:{headers[name].strip()}\n"
        for name in sorted(h for h in headers if h.startswith("x-oss-"))
    )
    text = "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            headers.get("date", ""),
            oss_headers + resource,
        ]
    )
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_oss_put(
    headers: Mapping[str, str],
    resource: str,
    *,
    access_key_id: str,
    access_key_secret: str,
    security_token: str,
    expires_at: float,
) -> None:
    """UploadRefused unless ``headers`` (lower-case) sign a PUT of ``resource`` with the
    STS credentials handed out for it, in time."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    key_id, _, given = credential.partition(":")
    if scheme != "OSS" or not given:
        raise UploadRefused(403, "AccessDenied", "Authorization must be 'OSS <id>:<signature>'")
    if key_id != access_key_id:
        raise UploadRefused(403, "InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
    if not hmac.compare_digest(headers.get("x-oss-security-token", ""), security_token):
        raise UploadRefused(403, "InvalidSecurityToken", "The security token is invalid.")
    if time.time() > expires_at:
        raise UploadRefused(403, "SecurityTokenExpired", "The security token has expired.")
    try:
        sent = parsedate_to_datetime(headers.get("date", "")).timestamp()
    except (TypeError, ValueError):
        raise UploadRefused(403, "AccessDenied", "Date header is missing or invalid") from None
    if abs(time.time() - sent) > OSS_MAX_SKEW_SECONDS:
        raise UploadRefused(403, "RequestTimeTooSkewed", "The request time is too skewed.")
    expected = oss_signature(access_key_secret, "PUT", resource, headers)
    if not hmac.compare_digest(given, expected):
        raise UploadRefused(403, "SignatureDoesNotMatch", "The request signature does not match.")


def mp4_duration(data: bytes) -> float:
    """Seconds from an MP4's ``mvhd`` box; UploadRefused if ``data`` is not an MP4 (the
    sandbox serves what it receives, so it takes only what a browser plays)."""
    at = data.find(b"mvhd")
    try:
        if data[4:8] != b"ftyp" or at < 4:
            raise ValueError("not an MP4")
        if data[at + 4] == 1:  # version 1: 64-bit times
            timescale, duration = struct.unpack(">IQ", data[at + 24 : at + 36])
        else:
            timescale, duration = struct.unpack(">II", data[at + 16 : at + 24])
    except (ValueError, IndexError, struct.error):
        raise UploadRefused(400, "InvalidFileType", "沙箱只接受 MP4 文件") from None
    return round(duration / timescale, 3) if timescale else 0.0
