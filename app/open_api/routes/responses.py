"""What the open API's operations answer: the ``data`` of each success envelope.

The handlers build plain dicts (from SQL rows and model ``public()`` views); these
models describe those dicts field for field, so ``/openapi.json`` documents them.
They describe, they do not convert: the wire format is the dict's own JSON.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from app.web.types import Output


class TokenOut(Output):
    id: int
    user_id: int
    name: str
    key_hint: str = Field(description="明文令牌的末几位, 用于辨认")
    status: str = Field(description="enabled / disabled")
    quota_limit: int = Field(description="纳单位, -1 不限")
    used_quota: int = Field(description="纳单位")
    expired_time: datetime | None
    accessed_time: datetime | None
    allowed_abilities: list[str] | None
    allowed_ips: list[str] | None
    created_at: datetime | None
    updated_at: datetime | None


class CreatedTokenOut(TokenOut):
    key: str = Field(description="明文令牌 sk-..., 仅此一次返回")


class LogOut(Output):
    id: int
    request_id: str
    user_id: int
    token_id: int | None
    path: str
    ability: str
    channel_id: int | None
    failed_channel_ids: list[int] | None
    status_code: int
    error_code: str | None
    latency_ms: int
    units: int
    cost: int = Field(description="纳单位")
    client_ip: str | None
    created_at: datetime


class LogPage(Output):
    items: list[LogOut]
    next_cursor: str | None = Field(description="下一页的游标; null 表示没有更多")


class UsageDay(Output):
    day: date
    ability: str
    calls: int
    succeeded: int
    cost: int = Field(description="纳单位")


class UsageOut(Output):
    since: datetime
    until: datetime
    days: list[UsageDay]


class WalletOut(Output):
    user_id: int
    balance: int = Field(description="纳单位")


class WalletEntryOut(Output):
    id: int
    user_id: int
    amount: int = Field(description="纳单位")
    balance_after: int = Field(description="纳单位")
    kind: str = Field(description="topup / adjust")
    reference: str | None
    operator_id: int | None
    note: str
    created_at: datetime | None


class TopUpOut(WalletEntryOut):
    replayed: bool = Field(description="true: 同一 reference 的重复请求, 返回首次的记录")


class ChannelOut(Output):
    id: int
    name: str
    provider: str
    base_url: str
    status: str
    priority: int
    weight: int
    has_credentials: bool
    created_at: datetime | None
    updated_at: datetime | None


class AbilityRouteOut(Output):
    id: int
    group_name: str
    ability: str
    channel_id: int
    enabled: bool
    priority: int | None
    weight: int | None
    created_at: datetime | None


class PriceOut(Output):
    ability: str
    price: int = Field(description="每次调用价格, 纳单位")
    description: str
    updated_at: datetime | None


class AbilitiesOut(Output):
    routes: list[AbilityRouteOut]
    prices: list[PriceOut]


class GroupOut(Output):
    name: str
    ratio: Decimal = Field(description='价格倍率, 字符串小数如 "0.8"')
    description: str
    created_at: datetime | None
    updated_at: datetime | None


class MemberOut(Output):
    user_id: int
    group: str


class OpenVideoOut(Output):
    id: int
    title: str
    description: str
    duration_seconds: int
    cover_url: str


class OpenVideoPage(Output):
    items: list[OpenVideoOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class PlayUrlOut(Output):
    video_id: int
    url: str
    expires_at: datetime


class UploadOut(Output):
    provider: str
    channel_id: int
    media_id: str | None
    signature: str | None
    upload_address: str | None
    upload_auth: str | None
    expires_at: datetime
