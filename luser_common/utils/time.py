"""UTC everywhere inside; Asia/Shanghai only when formatting for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

from ..errors import ValidationError

__all__ = ["SHANGHAI", "ensure_utc", "format_shanghai", "iso_z", "parse_datetime", "utc_now"]


def _shanghai() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Asia/Shanghai")
    except Exception:  # no tz database (slim containers, Windows without tzdata)
        # China has kept UTC+8 without DST since 1991, so a fixed offset is exact for today.
        return timezone(timedelta(hours=8), "Asia/Shanghai")


SHANGHAI: tzinfo = _shanghai()


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def ensure_utc(dt: datetime) -> datetime:
    """``dt`` in UTC; a naive value is taken to be UTC already (how luser stores time)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso_z(dt: datetime | None = None, timespec: str = "seconds") -> str:
    """ISO-8601 in UTC with a ``Z`` suffix: ``2026-11-21T08:00:00Z``."""
    value = ensure_utc(dt if dt is not None else utc_now())
    return value.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def format_shanghai(dt: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """``dt`` shown in Beijing time, e.g. ``2026-11-21 16:00:00``."""
    return ensure_utc(dt).astimezone(SHANGHAI).strftime(fmt)


def parse_datetime(value: str, field: str | None = None) -> datetime:
    """Parse ISO-8601 (``Z`` allowed) into aware UTC; naive input is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"{field or '时间'} 格式错误, 需要 ISO-8601", field=field) from exc
    return ensure_utc(parsed)
