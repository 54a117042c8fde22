"""Administration under /api/admin/open: channels, abilities, prices, groups, wallets,
tokens, logs and usage across users."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from app.open_api import manage, routing_config
from app.open_api.routes._shared import (
    Int4,
    LogQuery,
    Nano,
    QuotaLimit,
    UsageQuery,
    _ability,
    _given,
    _logs,
    _spec,
    _token_out,
    _usage,
    _window,
)
from app.open_api.routes.responses import (
    AbilitiesOut,
    AbilityRouteOut,
    ChannelOut,
    GroupOut,
    LogPage,
    MemberOut,
    PriceOut,
    TokenOut,
    TopUpOut,
    UsageOut,
    WalletEntryOut,
)
from app.web.operation import Call, Operation, operation
from app.web.types import MAX_BIGINT, Id, Input, Patch, QueryInput, Text
from luser_common import ValidationError

__all__ = ["OPERATIONS"]


class AdminLogQuery(LogQuery):
    user_id: Id | None = None
    channel_id: Id | None = None


class ChannelIn(Input):
    name: Text = Field(min_length=1, max_length=64)
    provider: Literal["tencent", "aliyun"]
    base_url: Text = Field("", max_length=300)
    status: Literal["enabled", "disabled"] = "enabled"
    priority: Int4 = 0
    weight: StrictInt = Field(1, ge=0, le=1_000_000)
    credentials: dict[str, str | int] = Field(default_factory=dict)


class ChannelPatch(Patch):
    name: Text | None = Field(None, min_length=1, max_length=64)
    base_url: Text | None = Field(None, max_length=300)
    status: Literal["enabled", "disabled"] | None = None
    priority: Int4 | None = None
    weight: StrictInt | None = Field(None, ge=0, le=1_000_000)
    credentials: dict[str, str | int] | None = None


async def _config_changed(call: Call) -> None:
    await call.services.open_api.refresh_config()


@operation(
    "GET",
    "/api/admin/open/channels",
    summary="上游通道列表 (不含凭证)",
    tag="open-api-admin",
    access="admin",
    response=list[ChannelOut],
)
async def admin_channels(call: Call) -> Any:
    return await routing_config.list_channels()


@operation(
    "POST",
    "/api/admin/open/channels",
    summary="创建上游通道",
    tag="open-api-admin",
    body=ChannelIn,
    status=201,
    access="admin",
    response=ChannelOut,
)
async def admin_create_channel(call: Call) -> Any:
    row = await routing_config.save_channel(call.body.model_dump(), call.services.open_api.box)
    await _config_changed(call)
    return row


@operation(
    "PATCH",
    "/api/admin/open/channels/{id}",
    summary="修改上游通道 (含启用/禁用)",
    tag="open-api-admin",
    body=ChannelPatch,
    access="admin",
    response=ChannelOut,
)
async def admin_update_channel(call: Call) -> Any:
    data = call.body.model_dump(include=call.body.model_fields_set)
    row = await routing_config.save_channel(data, call.services.open_api.box, call.path_id())
    await _config_changed(call)
    return row


@operation(
    "DELETE",
    "/api/admin/open/channels/{id}",
    summary="删除上游通道",
    tag="open-api-admin",
    status=204,
    access="admin",
    response=None,
)
async def admin_delete_channel(call: Call) -> Any:
    await routing_config.delete_channel(call.path_id())
    await _config_changed(call)
    return None


class AbilityIn(Input):
    group: str = Field("default", max_length=64)
    ability: str = _ability()
    channel_id: Id
    enabled: bool = True
    priority: Int4 | None = None
    weight: StrictInt | None = Field(None, ge=0, le=1_000_000)


@operation(
    "GET",
    "/api/admin/open/abilities",
    summary="能力路由与价格",
    tag="open-api-admin",
    access="admin",
    response=AbilitiesOut,
)
async def admin_abilities(call: Call) -> Any:
    return {
        "routes": await routing_config.list_abilities(),
        "prices": await routing_config.list_prices(),
    }


@operation(
    "POST",
    "/api/admin/open/abilities",
    summary="设置能力路由 (分组, 能力, 通道)",
    tag="open-api-admin",
    body=AbilityIn,
    access="admin",
    response=AbilityRouteOut,
)
async def admin_save_ability(call: Call) -> Any:
    b: AbilityIn = call.body
    row = await routing_config.save_ability(
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
    response=None,
)
async def admin_delete_ability(call: Call) -> Any:
    await routing_config.delete_ability(call.path_id())
    await _config_changed(call)
    return None


class PriceIn(Input):
    ability: str = _ability()
    price: Nano = Field(description="每次调用价格, 纳单位")
    description: Text = Field("", max_length=200, description="省略则保留原说明")


@operation(
    "POST",
    "/api/admin/open/prices",
    summary="设置能力价格 (纳单位)",
    tag="open-api-admin",
    body=PriceIn,
    access="admin",
    response=PriceOut,
)
async def admin_set_price(call: Call) -> Any:
    b: PriceIn = call.body
    row = await routing_config.set_price(b.ability, b.price, _given(b, "description"))
    await _config_changed(call)
    return row


class GroupIn(Input):
    name: str = Field(pattern=r"^[a-z0-9_][a-z0-9_.-]{0,63}$")
    ratio: str | StrictInt = Field(description='价格倍率, 字符串小数如 "0.8", 不超过 999999.999999')
    description: Text = Field("", max_length=200, description="省略则保留原说明")

    @field_validator("ratio")
    @classmethod
    def _ratio_fits_the_column(cls, value: str | int) -> str | int:
        try:
            routing_config.group_ratio(value)
        except ValidationError as exc:
            raise PydanticCustomError("ratio", exc.message) from exc
        return value


@operation(
    "GET",
    "/api/admin/open/groups",
    summary="用户分组",
    tag="open-api-admin",
    access="admin",
    response=list[GroupOut],
)
async def admin_groups(call: Call) -> Any:
    return await routing_config.list_groups()


@operation(
    "POST",
    "/api/admin/open/groups",
    summary="创建或修改分组倍率",
    tag="open-api-admin",
    body=GroupIn,
    access="admin",
    response=GroupOut,
)
async def admin_save_group(call: Call) -> Any:
    b: GroupIn = call.body
    row = await routing_config.save_group(b.name, b.ratio, _given(b, "description"))
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
    response=MemberOut,
)
async def admin_set_member(call: Call) -> Any:
    await routing_config.set_member(call.body.user_id, call.body.group)
    await _config_changed(call)
    return {"user_id": call.body.user_id, "group": call.body.group}


class TopUpIn(Input):
    user_id: Id
    amount: StrictInt = Field(
        ge=-MAX_BIGINT, le=MAX_BIGINT, description="纳单位; 充值为正, 调整 (kind=adjust) 可为负"
    )
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
    response=TopUpOut,
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
    response=list[WalletEntryOut],
)
async def admin_ledger(call: Call) -> Any:
    q: LedgerQuery = call.query
    return await manage.ledger(q.user_id, before_id=q.before_id, limit=q.limit)


class AdminTokenPatch(Patch):
    status: Literal["enabled", "disabled"] | None = None
    quota_limit: QuotaLimit | None = None


@operation(
    "PATCH",
    "/api/admin/open/tokens/{id}",
    summary="管理员禁用令牌或修改额度",
    tag="open-api-admin",
    body=AdminTokenPatch,
    access="admin",
    response=TokenOut,
)
async def admin_update_token(call: Call) -> Any:
    token_id = call.path_id()
    row = await manage.update_token(token_id, _spec(call.body, set(call.body.model_fields_set)))
    call.services.open_api.tokens.invalidate_token(token_id)
    return _token_out(row)


@operation(
    "GET",
    "/api/admin/open/logs",
    summary="全部调用日志 (游标分页)",
    tag="open-api-admin",
    query=AdminLogQuery,
    access="admin",
    response=LogPage,
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
    response=UsageOut,
)
async def admin_usage(call: Call) -> Any:
    return await _usage(call.query, _window(call.query), call.query.user_id)


OPERATIONS: list[Operation] = [
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
