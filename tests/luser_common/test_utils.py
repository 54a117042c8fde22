"""Time, passwords, tokens/HMAC, validators and masking."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher

from luser_common import ValidationError
from luser_common.utils import (
    constant_time_equals,
    ensure_utc,
    format_shanghai,
    hash_password,
    hmac_sha256,
    hmac_sha256_hex,
    is_email,
    is_mainland_mobile,
    iso_z,
    mask_email,
    mask_phone,
    needs_rehash,
    normalize_mobile,
    parse_datetime,
    random_token,
    utc_now,
    validate_password_strength,
    verify_password,
)

# -- time ------------------------------------------------------------------------


def test_utc_now_is_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_iso_z() -> None:
    dt = datetime(2026, 11, 21, 8, 0, 0, 123456, tzinfo=UTC)
    assert iso_z(dt) == "2026-11-21T08:00:00Z"
    assert iso_z(dt, timespec="milliseconds") == "2026-11-21T08:00:00.123Z"
    beijing = datetime(2026, 11, 21, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    assert iso_z(beijing) == "2026-11-21T08:00:00Z"
    assert iso_z().endswith("Z")


def test_format_shanghai() -> None:
    assert format_shanghai(datetime(2026, 11, 21, 8, 0, tzinfo=UTC)) == "2026-11-21 16:00:00"
    # Naive values are UTC by convention.
    assert format_shanghai(datetime(2026, 11, 21, 20, 30)) == "2026-11-22 04:30:00"
    assert format_shanghai(datetime(2026, 1, 1, tzinfo=UTC), "%Y年%m月%d日") == "2026年01月01日"


def test_ensure_utc_and_parse_datetime() -> None:
    assert ensure_utc(datetime(2026, 1, 1)).tzinfo is UTC
    parsed = parse_datetime("2026-11-21T16:00:00+08:00")
    assert parsed == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert parse_datetime("2026-11-21T08:00:00Z") == parsed
    with pytest.raises(ValidationError) as info:
        parse_datetime("yesterday", field="since")
    assert info.value.field == "since"


# -- passwords ---------------------------------------------------------------------


def test_hash_and_verify_password() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("s3cret-pass")  # salted
    assert verify_password("s3cret-pass", hashed)
    assert not verify_password("wrong-pass1", hashed)
    assert not verify_password("s3cret-pass", "not-a-hash")
    assert not needs_rehash(hashed)


def test_needs_rehash_for_weaker_parameters() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw123456")
    assert verify_password("pw123456", weak)
    assert needs_rehash(weak)


# -- tokens and HMAC ---------------------------------------------------------------


def test_random_token() -> None:
    token = random_token(32)
    assert len(token) == 43 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert random_token() != random_token()
    with pytest.raises(ValueError):
        random_token(8)


def test_hmac_helpers() -> None:
    expected = hmac.new(b"key", b"msg", hashlib.sha256)
    assert hmac_sha256("key", "msg") == expected.digest()
    assert hmac_sha256_hex(b"key", b"msg") == expected.hexdigest()
    assert constant_time_equals("abc", b"abc")
    assert constant_time_equals("签名", "签名")
    assert not constant_time_equals("abc", "abd")


# -- validators --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["13800138000", "19912345678", "+8613800138000", "8613800138000", "+86 13800138000"]
)
def test_mainland_mobile_valid(value: str) -> None:
    assert is_mainland_mobile(value)
    assert normalize_mobile(value) == value[-11:]


@pytest.mark.parametrize(
    "value",
    [
        "+86 138 0013 8000",
        "138 0013 8000",
        "138-0013-8000",
        "+86-138-0013-8000",
        " 86 13800138000 ",
    ],
)
def test_mainland_mobile_grouped_as_people_type_it(value: str) -> None:
    # docs/service.md shows "+86 138 0013 8000"; it used to be refused.
    assert normalize_mobile(value) == "13800138000"


@pytest.mark.parametrize(
    "value",
    [
        "12800138000",
        "1380013800",
        "138001380000",
        "+8513800138000",
        "abc",
        "",
        "1380013800a",
        "138 0013 800",
        "+86 138 0013 8000 1",
        "138_0013_8000",
    ],
)
def test_mainland_mobile_invalid(value: str) -> None:
    assert not is_mainland_mobile(value)


@pytest.mark.parametrize(
    "value",
    ["a@b.co", "first.last+tag@mail.example.com", "x_y@sub-domain.cn", "u@xn--fiqs8s.xn--fiqs8s"],
)
def test_email_valid(value: str) -> None:
    assert is_email(value)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "@x.com",
        "a@",
        "a@b",
        "a@@b.com",
        "a b@x.com",
        ".a@x.com",
        "a.@x.com",
        "a..b@x.com",
        "a@-x.com",
        "a@x..com",
        "a@x.c",
        "a@x.123",
        "a" * 65 + "@x.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_email_invalid(value: str) -> None:
    assert not is_email(value)


def test_password_strength() -> None:
    assert validate_password_strength("abcdefg1") is None
    too_short = validate_password_strength("abc12")
    assert isinstance(too_short, ValidationError) and too_short.field == "password"
    assert "8" in too_short.message
    assert validate_password_strength("a1" * 65) is not None  # 130 > 128
    assert validate_password_strength("abcdefgh") is not None  # no digit
    assert validate_password_strength("12345678") is not None  # no letter
    assert validate_password_strength("密码密码密码1234") is not None  # no latin letter
    assert validate_password_strength("x", field="new_password").field == "new_password"  # type: ignore[union-attr]


# -- masking -----------------------------------------------------------------------


def test_mask_phone() -> None:
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("+8613800138000") == "138****8000"
    assert mask_phone("010-12345678") == "****5678"
    assert mask_phone("123") == "****"
    assert mask_phone("") == "****"


def test_mask_email() -> None:
    assert mask_email("alice@x.com") == "a***@x.com"
    assert mask_email("b@example.cn") == "b***@example.cn"
    assert mask_email("not-an-email") == "***"
    assert mask_email("@x.com") == "***"
