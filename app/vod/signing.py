"""The providers' documented signing formulas, as pure functions (no clock, no randomness).

Callers pass the time and random parts in, so each formula can be checked against
the documentation's worked examples.

- Tencent client upload signature (docs 266/9221)
- Tencent Key hotlink protection URL (docs 266/14047)
- Aliyun URL authentication type A
- Aliyun HTTP callback signature (``X-VOD-SIGNATURE``)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

__all__ = [
    "aliyun_auth_a_url",
    "aliyun_callback_signature",
    "tencent_key_url",
    "tencent_upload_signature",
]

# Characters a URL path may hold as-is; everything else (e.g. non-ASCII) is percent-encoded.
# "%" is kept so an already-encoded path is not encoded twice.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def _encoded_path(path: str) -> str:
    return urllib.parse.quote(path or "/", safe=_PATH_SAFE)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def tencent_upload_signature(
    secret_id: str,
    secret_key: str,
    *,
    now: int,
    ttl: int,
    random_value: int,
    procedure: str | None = None,
    class_id: int | None = None,
    sub_app_id: int | None = None,
    one_time_valid: bool = False,
    source_context: str | None = None,
) -> str:
    """``base64(HMAC-SHA1(secret_key, original) + original)``, ``original`` URL-encoded."""
    params: list[tuple[str, str | int]] = [
        ("secretId", secret_id),
        ("currentTimeStamp", now),
        ("expireTime", now + ttl),
        ("random", random_value),
    ]
    if class_id is not None:
        params.append(("classId", class_id))
    if procedure:
        params.append(("procedure", procedure))
    if sub_app_id:
        params.append(("vodSubAppId", sub_app_id))
    if one_time_valid:
        params.append(("oneTimeValid", 1))
    if source_context:
        params.append(("sourceContext", source_context))
    original = urllib.parse.urlencode(params).encode("utf-8")
    digest = hmac.new(secret_key.encode("utf-8"), original, hashlib.sha1).digest()
    return base64.b64encode(digest + original).decode("ascii")


def tencent_key_url(
    url: str,
    key: str,
    *,
    expires_at: int,
    us: str,
    exper: int | None = None,
    rlimit: int | None = None,
) -> str:
    """Sign ``url`` for Tencent Key hotlink protection.

    ``sign = md5(KEY + Dir + t + exper + rlimit + us)`` where ``Dir`` is the path up to
    and including its last ``/``, ``t`` the lower-case hex expiry; ``exper`` (preview
    seconds) and ``rlimit`` (distinct IPs) count as "" when absent. Parameters are
    appended in the documented order t, exper, rlimit, us, sign.
    """
    parts = urllib.parse.urlsplit(url)
    path = _encoded_path(parts.path)
    directory = path[: path.rfind("/") + 1]
    t = format(expires_at, "x")
    ex = str(exper) if exper else ""
    rl = str(rlimit) if rlimit else ""
    sign = _md5(key + directory + t + ex + rl + us)
    query = [("t", t)]
    if ex:
        query.append(("exper", ex))
    if rl:
        query.append(("rlimit", rl))
    query += [("us", us), ("sign", sign)]
    return _with_query(parts, path, urllib.parse.urlencode(query))


def aliyun_auth_a_url(
    url: str, key: str, *, timestamp: int, rand: str = "0", uid: str = "0"
) -> str:
    """Append ``auth_key={timestamp}-{rand}-{uid}-{md5(URI-timestamp-rand-uid-key)}``.

    The CDN accepts the URL until ``timestamp`` + the validity period set in the console.
    """
    parts = urllib.parse.urlsplit(url)
    path = _encoded_path(parts.path)
    digest = _md5(f"{path}-{timestamp}-{rand}-{uid}-{key}")
    return _with_query(parts, path, f"auth_key={timestamp}-{rand}-{uid}-{digest}")


def aliyun_callback_signature(callback_url: str, timestamp: str | int, private_key: str) -> str:
    """``X-VOD-SIGNATURE = md5("{callback_url}|{X-VOD-TIMESTAMP}|{private_key}")``."""
    return _md5(f"{callback_url}|{timestamp}|{private_key}")


def _with_query(parts: urllib.parse.SplitResult, path: str, extra: str) -> str:
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))
