"""HTTP: the partner API under /open/v1, token management under /api/tokens,
administration under /api/admin/open, and Prometheus metrics at /metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, Field, StrictInt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from luser_common import NotFound, ValidationError

from ..routes._api import Call, Operation, operation
from ..routes._types import Id, Input, Patch, QueryInput, Text
from ..services.errors import InvalidState
from ..vod.base import VodProvider
from . import logs, manage
from .idempotency import request_fingerprint
from .logs import LogFilter
from .metrics import CONTENT_TYPE_LATEST
from .router import ChannelInfo
from .service import CallContext, OpenApi

__all__ = ["OPERATIONS", "metrics_route"]

_ABILITY = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"


def _ability(default: Any = ...) -> Any:
    return Field(default, pattern=_ABILITY, max_length=64)


def _service(call: Call) -> OpenApi:
    service: OpenApi | None = getattr(call.request.app.state, "open_api", None)
    if service is None:
        raise RuntimeError("open API not installed: call app.open_api.install(app)")
    return service


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def _context(call: Call, ability: str) -> CallContext:
    request = call.request
    idempotency_key = request.headers.get("idempotency-key") or None
    return CallContext(
        key=_bearer(request),
        ability=ability,
        path=request.url.path,
        client_ip=request.client.host if request.client else None,
        request_id=str(request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex),
        idempotency_key=idempotency_key,
        # The key is bound to this request: method, path and validated parameters.
        fingerprint=None
        if idempotency_key is None
        else request_fingerprint(
            request.method,
            request.url.path,
            {"path": request.path_params, "query": call.query, "body": call.body},
        ),
    )


# -- /open/v1 ------------------------------------------------------------------------


class OpenVideoQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)
    q: Text | None = Field(None, max_length=100)


@operation(
    "GET",
    "/open/v1/videos",
    summary="搜索视频目录 (catalog.search)",
    tag="open-api",
    query=OpenVideoQuery,
    errors=(401, 402, 403, 429),
)
async def open_videos(call: Call) -> Any:
    query: OpenVideoQuery = call.query

    async def search(_: Any) -> Any:
        page = await call.services.catalog.public_videos(query.page, query.size, q=query.q)
        return page.to_dict(
            lambda v: {
                "id": v.id,
                "title": v.title,
                "description": v.description,
                "duration_seconds": v.duration_seconds,
                "cover_url": v.cover_url,
            }
        )

    return await _service(call).call(
        _context(call, "catalog.search"), None, local=search, read_only=True
    )


@operation(
    "GET",
    "/open/v1/videos/{id}/play_url",
    summary="获取播放地址 (video.play_url)",
    tag="open-api",
    errors=(401, 402, 403, 404, 429, 502, 503),
)
async def open_play_url(call: Call) -> Any:
    video_id = call.path_id()
    ctx = _context(call, "video.play_url")
    found: dict[str, Any] = {}

    async def resolve() -> str:
        # After the key is checked: unauthenticated callers learn nothing about videos.
        video = await call.services.catalog.public_video(video_id)
        if not video.media_id:
            raise InvalidState("视频暂不可播放")
        found["media_id"] = video.media_id
        return str(video.provider)

    async def play(channel: ChannelInfo, client: VodProvider) -> Any:
        signed = await client.play_url(found["media_id"], client_ip=ctx.client_ip)
        return {"video_id": video_id, "url": signed.url, "expires_at": signed.expires_at}

    # Signing a URL (and the lookup it may need) changes nothing at the provider.
    return await _service(call).call(ctx, play, resolve=resolve, read_only=True)


class UploadIn(Input):
    title: Text = Field(min_length=1, max_length=200)
    file_name: Text = Field(min_length=1, max_length=200)


@operation(
    "POST",
    "/open/v1/uploads",
    summary="获取上传凭证 (video.upload_auth)",
    tag="open-api",
    body=UploadIn,
    errors=(401, 402, 403, 429, 502, 503),
)
async def open_upload(call: Call) -> Any:
    body: UploadIn = call.body
    ctx = _context(call, "video.upload_auth")

    async def upload(channel: ChannelInfo, client: VodProvider) -> Any:
        creds = await client.upload_credentials(
            body.title, body.file_name, source_context=f"open:{ctx.request_id}"[:250]
        )
        return {
            "provider": creds.provider,
            "channel_id": channel.id,
            "media_id": creds.media_id,
            "signature": creds.signature,
            "upload_address": creds.upload_address,
            "upload_auth": creds.upload_auth,
            "expires_at": creds.expires_at,
        }

    return await _service(call).call(ctx, upload)


class UsageQuery(QueryInput):
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    tz: str = Field("UTC", max_length=64, pattern=r"^[A-Za-z_/+\-0-9]+$")


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
    since, until = window
    rows = await logs.daily_usage(user_id, since, until, token_id=token_id, tz=query.tz)
    days = [{**r, "day": r["day"].isoformat()} for r in rows]
    return {"since": since, "until": until, "days": days}


@operation(
    "GET",
    "/open/v1/usage",
    summary="查询本令牌所属账户的每日用量 (usage.read)",
    tag="open-api",
    query=UsageQuery,
    errors=(401, 402, 403, 429),
)
async def open_usage(call: Call) -> Any:
    window = _window(call.query)

    async def usage(info: Any) -> Any:
        return await _usage(call.query, window, info.user_id)

    return await _service(call).call(
        _context(call, "usage.read"), None, local=usage, read_only=True
    )


# -- /api/tokens (the signed-in user's own) ------------------------------------------


class TokenIn(Input):
    name: Text = Field("", max_length=64)
    quota_limit: StrictInt = Field(-1, ge=-1, description="纳单位 (1 元 = 10^9), -1 不限")
    expired_time: AwareDatetime | None = None
    allowed_abilities: list[str] | None = Field(None, max_length=64)
    allowed_ips: list[str] | None = Field(None, max_length=256)


class TokenPatch(Patch):
    nullable = frozenset({"expired_time", "allowed_abilities", "allowed_ips"})
    name: Text | None = Field(None, max_length=64)
    status: Literal["enabled", "disabled"] | None = None
    quota_limit: StrictInt | None = Field(None, ge=-1)
    expired_time: AwareDatetime | None = None
    allowed_abilities: list[str] | None = Field(None, max_length=64)
    allowed_ips: list[str] | None = Field(None, max_length=256)


def _spec(data: Input, fields: set[str]) -> manage.TokenSpec:
    return manage.TokenSpec(**{name: getattr(data, name) for name in fields})


def _token_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key_hash"}


@operation(
    "POST",
    "/api/tokens",
    summary="创建 API 令牌 (明文仅返回一次)",
    tag="open-api-tokens",
    body=TokenIn,
    status=201,
    access="user",
)
async def create_token(call: Call) -> Any:
    body: TokenIn = call.body
    service = _service(call)
    created = await manage.create_token(
        call.current_user.id, _spec(body, set(body.model_fields_set)), pepper=service.pepper
    )
    service.tokens.invalidate_hash(created.key_hash)  # drop a cached "unknown key" verdict
    return {**_token_out(created.token), "key": created.key}


class TokenListQuery(QueryInput):
    after_id: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)


@operation(
    "GET",
    "/api/tokens",
    summary="我的 API 令牌",
    tag="open-api-tokens",
    query=TokenListQuery,
    access="user",
)
async def list_tokens(call: Call) -> Any:
    rows = await manage.list_tokens(
        call.current_user.id, after_id=call.query.after_id, limit=call.query.limit
    )
    return [_token_out(r) for r in rows]


class LogQuery(QueryInput):
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=500)
    token_id: Id | None = None
    ability: str | None = _ability(None)
    status_code: int | None = Field(None, ge=100, le=599)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class AdminLogQuery(LogQuery):
    user_id: Id | None = None
    channel_id: Id | None = None


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


@operation(
    "GET",
    "/api/tokens/logs",
    summary="我的调用日志 (游标分页)",
    tag="open-api-tokens",
    query=LogQuery,
    access="user",
)
async def my_logs(call: Call) -> Any:
    return await _logs(call.query, call.current_user.id)


class MyUsageQuery(UsageQuery):
    token_id: Id | None = None


@operation(
    "GET",
    "/api/tokens/usage",
    summary="我的每日用量",
    tag="open-api-tokens",
    query=MyUsageQuery,
    access="user",
)
async def my_usage(call: Call) -> Any:
    query = call.query
    return await _usage(query, _window(query), call.current_user.id, query.token_id)


@operation(
    "GET",
    "/api/tokens/wallet",
    summary="我的钱包余额 (纳单位)",
    tag="open-api-tokens",
    access="user",
)
async def my_wallet(call: Call) -> Any:
    return await manage.wallet(call.current_user.id)


@operation("GET", "/api/tokens/{id}", summary="查看令牌", tag="open-api-tokens", access="user")
async def get_token(call: Call) -> Any:
    return _token_out(await manage.get_token(call.path_id(), call.current_user.id))


@operation(
    "PATCH",
    "/api/tokens/{id}",
    summary="修改令牌: 状态/额度/过期/能力/IP",
    tag="open-api-tokens",
    body=TokenPatch,
    access="user",
)
async def update_token(call: Call) -> Any:
    token_id = call.path_id()
    row = await manage.update_token(
        token_id, _spec(call.body, set(call.body.model_fields_set)), call.current_user.id
    )
    _service(call).tokens.invalidate_token(token_id)
    return _token_out(row)


@operation(
    "DELETE",
    "/api/tokens/{id}",
    summary="删除令牌",
    tag="open-api-tokens",
    status=204,
    access="user",
)
async def delete_token(call: Call) -> Any:
    token_id = call.path_id()
    await manage.delete_token(token_id, call.current_user.id)
    _service(call).tokens.invalidate_token(token_id)
    return None


# -- /api/admin/open -----------------------------------------------------------------


class ChannelIn(Input):
    name: Text = Field(min_length=1, max_length=64)
    provider: Literal["tencent", "aliyun"]
    base_url: Text = Field("", max_length=300)
    status: Literal["enabled", "disabled"] = "enabled"
    priority: StrictInt = 0
    weight: StrictInt = Field(1, ge=0, le=1_000_000)
    credentials: dict[str, str | int] = Field(default_factory=dict)


class ChannelPatch(Patch):
    name: Text | None = Field(None, min_length=1, max_length=64)
    base_url: Text | None = Field(None, max_length=300)
    status: Literal["enabled", "disabled"] | None = None
    priority: StrictInt | None = None
    weight: StrictInt | None = Field(None, ge=0, le=1_000_000)
    credentials: dict[str, str | int] | None = None


async def _config_changed(call: Call) -> None:
    await _service(call).refresh_config()


@operation(
    "GET",
    "/api/admin/open/channels",
    summary="上游通道列表 (不含凭证)",
    tag="open-api-admin",
    access="admin",
)
async def admin_channels(call: Call) -> Any:
    return await manage.list_channels()


@operation(
    "POST",
    "/api/admin/open/channels",
    summary="创建上游通道",
    tag="open-api-admin",
    body=ChannelIn,
    status=201,
    access="admin",
)
async def admin_create_channel(call: Call) -> Any:
    row = await manage.save_channel(call.body.model_dump(), _service(call).box)
    await _config_changed(call)
    return row


@operation(
    "PATCH",
    "/api/admin/open/channels/{id}",
    summary="修改上游通道 (含启用/禁用)",
    tag="open-api-admin",
    body=ChannelPatch,
    access="admin",
)
async def admin_update_channel(call: Call) -> Any:
    data = call.body.model_dump(include=call.body.model_fields_set)
    row = await manage.save_channel(data, _service(call).box, call.path_id())
    await _config_changed(call)
    return row


@operation(
    "DELETE",
    "/api/admin/open/channels/{id}",
    summary="删除上游通道",
    tag="open-api-admin",
    status=204,
    access="admin",
)
async def admin_delete_channel(call: Call) -> Any:
    await manage.delete_channel(call.path_id())
    await _config_changed(call)
    return None


class AbilityIn(Input):
    group: str = Field("default", max_length=64)
    ability: str = _ability()
    channel_id: Id
    enabled: bool = True
    priority: StrictInt | None = None
    weight: StrictInt | None = Field(None, ge=0, le=1_000_000)


@operation(
    "GET",
    "/api/admin/open/abilities",
    summary="能力路由与价格",
    tag="open-api-admin",
    access="admin",
)
async def admin_abilities(call: Call) -> Any:
    return {"routes": await manage.list_abilities(), "prices": await manage.list_prices()}


@operation(
    "POST",
    "/api/admin/open/abilities",
    summary="设置能力路由 (分组, 能力, 通道)",
    tag="open-api-admin",
    body=AbilityIn,
    access="admin",
)
async def admin_save_ability(call: Call) -> Any:
    b: AbilityIn = call.body
    row = await manage.save_ability(
        b.group, b.ability, b.channel_id, enabled=b.enabled, priority=b.priority, weight=b.weight
    )
    await _config_changed(call)
    return row


@operation(
    "DELETE",
    "/api/admin/open/abilities/{id}",
    summary="删除能力路由",
    tag="open-api-admin",
    status=204,
    access="admin",
)
async def admin_delete_ability(call: Call) -> Any:
    await manage.delete_ability(call.path_id())
    await _config_changed(call)
    return None


class PriceIn(Input):
    ability: str = _ability()
    price: StrictInt = Field(ge=0, description="每次调用价格, 纳单位")
    description: Text = Field("", max_length=200)


@operation(
    "POST",
    "/api/admin/open/prices",
    summary="设置能力价格 (纳单位)",
    tag="open-api-admin",
    body=PriceIn,
    access="admin",
)
async def admin_set_price(call: Call) -> Any:
    b: PriceIn = call.body
    row = await manage.set_price(b.ability, b.price, b.description)
    await _config_changed(call)
    return row


class GroupIn(Input):
    name: str = Field(pattern=r"^[a-z0-9_][a-z0-9_.-]{0,63}$")
    ratio: str | StrictInt = Field(description='价格倍率, 字符串小数如 "0.8"')
    description: Text = Field("", max_length=200)


@operation(
    "GET", "/api/admin/open/groups", summary="用户分组", tag="open-api-admin", access="admin"
)
async def admin_groups(call: Call) -> Any:
    return await manage.list_groups()


@operation(
    "POST",
    "/api/admin/open/groups",
    summary="创建或修改分组倍率",
    tag="open-api-admin",
    body=GroupIn,
    access="admin",
)
async def admin_save_group(call: Call) -> Any:
    b: GroupIn = call.body
    row = await manage.save_group(b.name, b.ratio, b.description)
    await _config_changed(call)
    return row


class MemberIn(Input):
    user_id: Id
    group: str = Field(pattern=r"^[a-z0-9_][a-z0-9_.-]{0,63}$")


@operation(
    "POST",
    "/api/admin/open/group_members",
    summary="设置用户所属分组",
    tag="open-api-admin",
    body=MemberIn,
    access="admin",
)
async def admin_set_member(call: Call) -> Any:
    await manage.set_member(call.body.user_id, call.body.group)
    await _config_changed(call)
    return {"user_id": call.body.user_id, "group": call.body.group}


class TopUpIn(Input):
    user_id: Id
    amount: StrictInt = Field(description="纳单位; 充值为正, 调整 (kind=adjust) 可为负")
    kind: Literal["topup", "adjust"] = "topup"
    reference: Text | None = Field(None, max_length=128, description="幂等键, 如支付单号")
    note: Text = Field("", max_length=200)


@operation(
    "POST",
    "/api/admin/open/topups",
    summary="钱包充值 (记账, 按 reference 幂等)",
    tag="open-api-admin",
    body=TopUpIn,
    status=201,
    access="admin",
)
async def admin_top_up(call: Call) -> Any:
    b: TopUpIn = call.body
    return await manage.top_up(
        b.user_id,
        b.amount,
        reference=b.reference,
        operator_id=call.current_user.id,
        note=b.note,
        kind=b.kind,
    )


class LedgerQuery(QueryInput):
    user_id: Id
    before_id: Id | None = None
    limit: int = Field(50, ge=1, le=200)


@operation(
    "GET",
    "/api/admin/open/topups",
    summary="钱包流水 (充值与调整)",
    tag="open-api-admin",
    query=LedgerQuery,
    access="admin",
)
async def admin_ledger(call: Call) -> Any:
    q: LedgerQuery = call.query
    return await manage.ledger(q.user_id, before_id=q.before_id, limit=q.limit)


class AdminTokenPatch(Patch):
    status: Literal["enabled", "disabled"] | None = None
    quota_limit: StrictInt | None = Field(None, ge=-1)


@operation(
    "PATCH",
    "/api/admin/open/tokens/{id}",
    summary="管理员禁用令牌或修改额度",
    tag="open-api-admin",
    body=AdminTokenPatch,
    access="admin",
)
async def admin_update_token(call: Call) -> Any:
    token_id = call.path_id()
    row = await manage.update_token(token_id, _spec(call.body, set(call.body.model_fields_set)))
    _service(call).tokens.invalidate_token(token_id)
    return _token_out(row)


@operation(
    "GET",
    "/api/admin/open/logs",
    summary="全部调用日志 (游标分页)",
    tag="open-api-admin",
    query=AdminLogQuery,
    access="admin",
)
async def admin_logs(call: Call) -> Any:
    return await _logs(call.query, call.query.user_id, call.query.channel_id)


class AdminUsageQuery(UsageQuery):
    user_id: Id | None = None


@operation(
    "GET",
    "/api/admin/open/usage",
    summary="每日用量 (全部或某用户)",
    tag="open-api-admin",
    query=AdminUsageQuery,
    access="admin",
)
async def admin_usage(call: Call) -> Any:
    return await _usage(call.query, _window(call.query), call.query.user_id)


# -- /metrics ------------------------------------------------------------------------


async def metrics_endpoint(request: Request) -> Response:
    service: OpenApi | None = getattr(request.app.state, "open_api", None)
    if service is None:
        raise NotFound("指标未启用")
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    return Route("/metrics", metrics_endpoint, methods=["GET"], name="open_api_metrics")


OPERATIONS: list[Operation] = [
    open_videos,
    open_play_url,
    open_upload,
    open_usage,
    create_token,
    list_tokens,
    my_logs,
    my_usage,
    my_wallet,
    get_token,
    update_token,
    delete_token,
    admin_channels,
    admin_create_channel,
    admin_update_channel,
    admin_delete_channel,
    admin_abilities,
    admin_save_ability,
    admin_delete_ability,
    admin_set_price,
    admin_groups,
    admin_save_group,
    admin_set_member,
    admin_top_up,
    admin_ledger,
    admin_update_token,
    admin_logs,
    admin_usage,
]
