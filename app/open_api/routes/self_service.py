"""Token management under /api/tokens: the signed-in user's own keys, logs and usage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from app.open_api import manage
from app.open_api.routes._shared import (
    LogQuery,
    QuotaLimit,
    UsageQuery,
    _logs,
    _spec,
    _token_out,
    _usage,
    _window,
)
from app.open_api.routes.responses import (
    CreatedTokenOut,
    LogPage,
    TokenOut,
    UsageOut,
    WalletOut,
)
from app.web.operation import Call, Operation, operation
from app.web.types import MAX_BIGINT, Id, Input, Patch, QueryInput, Text

__all__ = ["OPERATIONS"]


class TokenIn(Input):
    name: Text = Field("", max_length=64)
    quota_limit: QuotaLimit = -1
    expired_time: AwareDatetime | None = None
    allowed_abilities: list[str] | None = Field(None, max_length=64)
    allowed_ips: list[str] | None = Field(None, max_length=256)


class TokenPatch(Patch):
    nullable = frozenset({"expired_time", "allowed_abilities", "allowed_ips"})
    name: Text | None = Field(None, max_length=64)
    status: Literal["enabled", "disabled"] | None = None
    quota_limit: QuotaLimit | None = None
    expired_time: AwareDatetime | None = None
    allowed_abilities: list[str] | None = Field(None, max_length=64)
    allowed_ips: list[str] | None = Field(None, max_length=256)


@operation(
    "POST",
    "/api/tokens",
    summary="创建 API 令牌 (明文仅返回一次)",
    tag="open-api-tokens",
    body=TokenIn,
    status=201,
    access="user",
    response=CreatedTokenOut,
)
async def create_token(call: Call) -> Any:
    body: TokenIn = call.body
    service = call.services.open_api
    created = await manage.create_token(
        call.current_user.id, _spec(body, set(body.model_fields_set)), pepper=service.pepper
    )
    service.tokens.invalidate_hash(created.key_hash)  # drop a cached "unknown key" verdict
    return {**_token_out(created.token), "key": created.key}


class TokenListQuery(QueryInput):
    after_id: int = Field(0, ge=0, le=MAX_BIGINT)
    limit: int = Field(50, ge=1, le=200)


@operation(
    "GET",
    "/api/tokens",
    summary="我的 API 令牌",
    tag="open-api-tokens",
    query=TokenListQuery,
    access="user",
    response=list[TokenOut],
)
async def list_tokens(call: Call) -> Any:
    rows = await manage.list_tokens(
        call.current_user.id, after_id=call.query.after_id, limit=call.query.limit
    )
    return [_token_out(r) for r in rows]


@operation(
    "GET",
    "/api/tokens/logs",
    summary="我的调用日志 (游标分页)",
    tag="open-api-tokens",
    query=LogQuery,
    access="user",
    response=LogPage,
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
    response=UsageOut,
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
    response=WalletOut,
)
async def my_wallet(call: Call) -> Any:
    return await manage.wallet(call.current_user.id)


@operation(
    "GET",
    "/api/tokens/{id}",
    summary="查看令牌",
    tag="open-api-tokens",
    access="user",
    response=TokenOut,
)
async def get_token(call: Call) -> Any:
    return _token_out(await manage.get_token(call.path_id(), call.current_user.id))


@operation(
    "PATCH",
    "/api/tokens/{id}",
    summary="修改令牌: 状态/额度/过期/能力/IP",
    tag="open-api-tokens",
    body=TokenPatch,
    access="user",
    response=TokenOut,
)
async def update_token(call: Call) -> Any:
    token_id = call.path_id()
    row = await manage.update_token(
        token_id, _spec(call.body, set(call.body.model_fields_set)), call.current_user.id
    )
    call.services.open_api.tokens.invalidate_token(token_id)
    return _token_out(row)


@operation(
    "DELETE",
    "/api/tokens/{id}",
    summary="删除令牌",
    tag="open-api-tokens",
    status=204,
    access="user",
    response=None,
)
async def delete_token(call: Call) -> Any:
    token_id = call.path_id()
    await manage.delete_token(token_id, call.current_user.id)
    call.services.open_api.tokens.invalidate_token(token_id)
    return None


OPERATIONS: list[Operation] = [
    create_token,
    list_tokens,
    my_logs,
    my_usage,
    my_wallet,
    get_token,
    update_token,
    delete_token,
]
