"""What the open API's partner, self-service and admin routes share: input types
bounded like their columns, ability names, usage windows (with their time zone) and
log queries (with their cursor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, AwareDatetime, Field, StrictInt
from pydantic_core import PydanticCustomError

from app.open_api import logs, manage
from app.open_api.logs import LogFilter
from app.web.types import MAX_BIGINT, Id, Input, QueryInput
from luser_common import ValidationError

# Integers bounded like the columns they are stored in, so that an out-of-range
# value is a 422 naming the field rather than a driver error.
Int4 = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
Nano = Annotated[StrictInt, Field(ge=0, le=MAX_BIGINT, description="纳单位 (1 元 = 10^9)")]
QuotaLimit = Annotated[
    StrictInt, Field(ge=-1, le=MAX_BIGINT, description="纳单位 (1 元 = 10^9), -1 不限")
]

_ABILITY = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"


def _ability(default: Any = ...) -> Any:
    return Field(default, pattern=_ABILITY, max_length=64)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def _known_zone(name: str) -> str:
    # Checked here, before the database sees it: PostgreSQL refuses an unknown zone
    # only once the query runs, after a partner call has been charged.
    if name not in _time_zones():
        raise PydanticCustomError("unknown_time_zone", "未知的时区, 请使用 IANA 时区名")
    return name


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]


class UsageQuery(QueryInput):
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    tz: TimeZone = Field("UTC", description="IANA 时区名, 如 Asia/Shanghai")


def _window(query: UsageQuery) -> tuple[datetime, datetime]:
    until = query.until or datetime.now(UTC)
    since = query.since or until - timedelta(days=30)
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationError("时间必须带时区, 例如 2026-11-01T00:00:00Z", field="since")
    if not since < until <= since + timedelta(days=366):
        raise ValidationError("时间范围必须为正且不超过 366 天", field="since")
    return since, until


async def _usage(
    query: UsageQuery,
    window: tuple[datetime, datetime],
    user_id: int | None,
    token_id: int | None = None,
) -> dict[str, Any]:
    """Daily totals over ``window`` (from ``_window``, checked before anything is charged)."""
    since, until = logs.usage_window(*window)  # what the rollup's slots cover
    rows = await logs.daily_usage(user_id, since, until, token_id=token_id, tz=query.tz)
    days = [{**r, "day": r["day"].isoformat()} for r in rows]
    return {"since": since, "until": until, "days": days}


def _given(data: Input, name: str) -> Any:
    """The field's value when the request sent it; None when it was left out."""
    return getattr(data, name) if name in data.model_fields_set else None


def _spec(data: Input, fields: set[str]) -> manage.TokenSpec:
    return manage.TokenSpec(**{name: getattr(data, name) for name in fields})


def _token_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key_hash"}


# An opaque keyset cursor (luser_db signs it): one that was edited or made for another
# listing is refused by the listing itself, 422 INVALID_CURSOR on the field "cursor".
Cursor = Annotated[str, Field(min_length=1, max_length=1024)]


class LogQuery(QueryInput):
    cursor: Cursor | None = None
    limit: int = Field(50, ge=1, le=500)
    token_id: Id | None = None
    ability: str | None = _ability(None)
    status_code: int | None = Field(None, ge=100, le=599)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


async def _logs(query: LogQuery, user_id: int | None, channel_id: int | None = None) -> Any:
    flt = LogFilter(
        user_id=user_id,
        token_id=query.token_id,
        ability=query.ability,
        channel_id=channel_id,
        status_code=query.status_code,
        since=query.since,
        until=query.until,
    )
    items, cursor = await logs.query_logs(flt, cursor=query.cursor, limit=query.limit)
    return {"items": items, "next_cursor": cursor}
