"""Provider time formats, always turned into timezone-aware datetimes.

Alipay writes Beijing local time without an offset (``2024-05-01 12:00:05``) and
expects the request ``timestamp`` in the same form. China has had no DST since
1991, so a fixed +08:00 offset is exact and needs no tz database (which a fresh
Windows machine lacks). WeChat Pay writes RFC 3339 with an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "BEIJING",
    "beijing_now_str",
    "format_beijing",
    "format_rfc3339",
    "parse_beijing",
    "parse_rfc3339",
]

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_ALIPAY_FORMAT = "%Y-%m-%d %H:%M:%S"


def parse_beijing(text: str) -> datetime:
    """``"2024-05-01 12:00:05"`` (Beijing) -> aware datetime; ValueError if malformed."""
    return datetime.strptime(text, _ALIPAY_FORMAT).replace(tzinfo=BEIJING)


def format_beijing(moment: datetime) -> str:
    """Aware datetime -> Alipay's Beijing local ``YYYY-MM-DD HH:MM:SS``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware value")
    return moment.astimezone(BEIJING).strftime(_ALIPAY_FORMAT)


def beijing_now_str() -> str:
    return format_beijing(datetime.now(UTC))


def parse_rfc3339(text: str) -> datetime:
    """``"2024-05-01T12:00:05+08:00"`` -> aware datetime; ValueError if malformed or naive."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"RFC 3339 time without offset: {text!r}")
    return moment


def format_rfc3339(moment: datetime) -> str:
    """Aware datetime -> ``2024-05-01T12:00:05+08:00`` (WeChat's ``time_expire``)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware value")
    return moment.astimezone(BEIJING).replace(microsecond=0).isoformat()
