"""The signing formulas, each checked against the documented formula written out by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

from app.vod.signing import (
    aliyun_auth_a_url,
    aliyun_callback_signature,
    tencent_key_url,
    tencent_upload_signature,
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_aliyun_type_a_matches_the_worked_example() -> None:
    url = aliyun_auth_a_url(
        "http://example.aliyundoc.com/video/standard/test.mp4",
        "aliyunvodexp1234",
        timestamp=1627747200,
    )
    assert url == (
        "http://example.aliyundoc.com/video/standard/test.mp4"
        "?auth_key=1627747200-0-0-0e9048c8c7de46b6015618f42de79bc2"
    )
    assert md5("/video/standard/test.mp4-1627747200-0-0-aliyunvodexp1234") in url


def test_aliyun_type_a_keeps_query_and_encodes_non_ascii_path() -> None:
    url = aliyun_auth_a_url("https://v.example.com/视频/a.mp4?x=1", "k", timestamp=10, rand="ab")
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/%E8%A7%86%E9%A2%91/a.mp4"
    digest = md5("/%E8%A7%86%E9%A2%91/a.mp4-10-ab-0-k")
    assert parts.query == f"x=1&auth_key=10-ab-0-{digest}"


def test_tencent_key_url_signs_dir_t_exper_rlimit_us_in_order() -> None:
    url = tencent_key_url(
        "http://1234.vod2.myqcloud.com/dir1/dir2/myVideo.mp4",
        "24FEQmTzro4V5u3D5epW",
        expires_at=0x5E7BD580,
        exper=600,
        rlimit=3,
        us="72d4cd1101",
    )
    query = urllib.parse.urlsplit(url).query
    names = [pair.split("=")[0] for pair in query.split("&")]
    assert names == ["t", "exper", "rlimit", "us", "sign"]
    params = dict(urllib.parse.parse_qsl(query))
    assert params["t"] == "5e7bd580"
    expected = md5("24FEQmTzro4V5u3D5epW" + "/dir1/dir2/" + "5e7bd580" + "600" + "3" + "72d4cd1101")
    assert params["sign"] == expected


def test_tencent_key_url_without_preview_or_ip_limit_signs_empty_strings() -> None:
    url = tencent_key_url("https://d.example.com/a/b.m3u8", "KEY", expires_at=255, us="u1")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert set(params) == {"t", "us", "sign"}
    assert params["sign"] == md5("KEY" + "/a/" + "ff" + "" + "" + "u1")


def test_tencent_upload_signature_is_hmac_sha1_then_original() -> None:
    signature = tencent_upload_signature(
        "AKIDexample",
        "secretKey",
        now=1700000000,
        ttl=1800,
        random_value=42,
        procedure="LongVideoPreset",
        sub_app_id=1500000001,
        one_time_valid=True,
        source_context="video=7&名",
    )
    raw = base64.b64decode(signature)
    digest, original = raw[:20], raw[20:]
    assert hmac.compare_digest(digest, hmac.new(b"secretKey", original, hashlib.sha1).digest())
    params = dict(urllib.parse.parse_qsl(original.decode()))
    assert params == {
        "secretId": "AKIDexample",
        "currentTimeStamp": "1700000000",
        "expireTime": "1700001800",
        "random": "42",
        "procedure": "LongVideoPreset",
        "vodSubAppId": "1500000001",
        "oneTimeValid": "1",
        "sourceContext": "video=7&名",
    }
    assert b"sourceContext=video%3D7%26%E5%90%8D" in original  # values are URL-encoded


def test_tencent_upload_signature_changes_with_the_key() -> None:
    one = tencent_upload_signature("id", "a", now=1, ttl=60, random_value=1)
    assert one != tencent_upload_signature("id", "b", now=1, ttl=60, random_value=1)


def test_aliyun_callback_signature_formula() -> None:
    url = "https://www.example.com/your/callback"
    assert aliyun_callback_signature(url, 1519375990, "test123") == md5(f"{url}|1519375990|test123")
