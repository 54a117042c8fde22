"""The console's open API pages: upstream channels, prices, groups, every user's
tokens, and calls and cost per day.

Each change runs the ``/api/admin/open/...`` operation's own handler (so the routing
config is refreshed and the token cache invalidated exactly as the API does it);
a token is created for a user by the ``POST /api/tokens`` handler acting for them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.open_api import logs, manage, routing_config
from app.open_api.routes import admin, self_service
from app.open_api.routes.self_service import TokenIn
from app.site.chart import Chart, bar_chart
from app.site.console import back
from app.site.keys import USAGE_DAYS, USAGE_TZ, _require_open_api
from app.site.render import current_user, int_param, page, path_id, read_form, render, validate
from app.web.operation import Call
from luser_common import AppError, ValidationError

NANO_PER_FEN = 10_000_000
DONE = {"enabled": "启用", "disabled": "停用"}


def form_int(form: dict[str, str], name: str, default: int | None = None) -> int:
    """An integer field (a leading minus allowed); empty means ``default``."""
    raw = form.get(name, "").strip()
    if not raw and default is not None:
        return default
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise ValidationError("请输入整数", field=name)
    return int(raw)


def _call(request: Request, body: Any = None) -> Call:
    return Call(request, body=body, user=current_user(request))


# -- channels --------------------------------------------------------------------------


async def _channels_page(
    request: Request, form: dict[str, str] | None = None, error: AppError | None = None
) -> Response:
    _require_open_api(request)
    context = {
        "channels": await routing_config.list_channels(),
        "form": form or {},
        "error": error,
        "section": "open",
    }
    return render(
        request, "console/open_channels.html", context, error.status_code if error else 200
    )


@page(admin=True)
async def channels(request: Request) -> Response:
    return await _channels_page(request)


@page(admin=True)
async def create_channel(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        data = {
            "name": form.get("name", ""),
            "provider": form.get("provider", ""),
            "base_url": form.get("base_url", ""),
            "priority": form_int(form, "priority", 0),
            "weight": form_int(form, "weight", 1),
        }
        row = await admin.admin_create_channel.handler(
            _call(request, validate(admin.ChannelIn, data))
        )
    except AppError as err:
        return await _channels_page(request, form, err)
    return back("/console/open/channels", f"通道 #{row['id']} “{row['name']}” 已创建")


@page(admin=True)
async def channel_action(request: Request) -> Response:
    _require_open_api(request)
    await read_form(request)
    channel_id, action = path_id(request), request.path_params["action"]
    if action == "delete":
        await admin.admin_delete_channel.handler(_call(request))
        return back("/console/open/channels", f"通道 #{channel_id} 已删除")
    if action not in ("enable", "disable"):
        raise ValidationError("未知操作", field="action")
    status = "enabled" if action == "enable" else "disabled"
    await admin.admin_update_channel.handler(
        _call(request, validate(admin.ChannelPatch, {"status": status}))
    )
    return back(
        "/console/open/channels",
        f"通道 #{channel_id} 已{'启用' if status == 'enabled' else '停用'}",
    )


# -- prices and groups -----------------------------------------------------------------


async def _prices_page(
    request: Request, form: dict[str, str] | None = None, error: AppError | None = None
) -> Response:
    _require_open_api(request)
    context = {
        "prices": await routing_config.list_prices(),
        "groups": await routing_config.list_groups(),
        "routes": await routing_config.list_abilities(),
        "channels": await routing_config.list_channels(),
        "form": form or {},
        "error": error,
        "section": "open-prices",
    }
    status = error.status_code if error else 200
    return render(request, "console/open_prices.html", context, status)


@page(admin=True)
async def prices(request: Request) -> Response:
    return await _prices_page(request)


@page(admin=True)
async def set_price(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        data = {
            "ability": form.get("ability", ""),
            "price": form_int(form, "price"),
            "description": form.get("description", ""),
        }
        row = await admin.admin_set_price.handler(_call(request, validate(admin.PriceIn, data)))
    except AppError as err:
        return await _prices_page(request, form, err)
    return back("/console/open/prices", f"能力 “{row['ability']}” 的价格已保存")


@page(admin=True)
async def save_group(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        data = {
            "name": form.get("group_name", ""),
            "ratio": form.get("ratio", ""),
            "description": form.get("group_description", ""),
        }
        row = await admin.admin_save_group.handler(_call(request, validate(admin.GroupIn, data)))
    except AppError as err:
        return await _prices_page(request, form, err)
    return back("/console/open/prices", f"分组 “{row['name']}” 已保存")


@page(admin=True)
async def save_route(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        data: dict[str, Any] = {
            "group": form.get("route_group", "") or "default",
            "ability": form.get("route_ability", ""),
            "channel_id": form_int(form, "route_channel"),
        }
        if form.get("route_priority", "").strip():
            data["priority"] = form_int(form, "route_priority")
        body = validate(admin.AbilityIn, data)
        await admin.admin_save_ability.handler(_call(request, body))
    except AppError as err:
        return await _prices_page(request, form, err)
    return back("/console/open/prices", f"能力路由 {body.group} / {body.ability} 已保存")


@page(admin=True)
async def delete_route(request: Request) -> Response:
    _require_open_api(request)
    await read_form(request)
    route_id = path_id(request)
    await admin.admin_delete_ability.handler(_call(request))
    return back("/console/open/prices", f"能力路由 #{route_id} 已删除")


# -- tokens ----------------------------------------------------------------------------


async def _tokens_page(
    request: Request,
    *,
    created: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    error: AppError | None = None,
) -> Response:
    _require_open_api(request)
    owner = int_param(request, "user_id", default=0, upper=2**62)
    context = {
        "tokens": await manage.list_tokens(owner or None, limit=200),
        "owner": owner,
        "created": created,
        "form": form or {},
        "error": error,
        "section": "open-tokens",
    }
    status = error.status_code if error else 200
    return render(request, "console/open_tokens.html", context, status)


@page(admin=True)
async def tokens(request: Request) -> Response:
    return await _tokens_page(request)


@page(admin=True)
async def create_token(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        owner_id = form_int(form, "user_id")
        if owner_id < 1:
            raise ValidationError("请输入用户 ID", field="user_id")
        owner = await request.app.state.services.accounts.user(owner_id)
        body = validate(TokenIn, {"name": form.get("name", "")})
        # The self-service handler, acting for the owner: the same rules and cache upkeep.
        made = await self_service.create_token.handler(Call(request, body=body, user=owner))
    except AppError as err:
        return await _tokens_page(request, form=form, error=err)
    return await _tokens_page(request, created=made)


@page(admin=True)
async def token_action(request: Request) -> Response:
    _require_open_api(request)
    await read_form(request)
    action = request.path_params["action"]
    if action not in ("enable", "disable"):
        raise ValidationError("未知操作", field="action")
    status = "enabled" if action == "enable" else "disabled"
    row = await admin.admin_update_token.handler(
        _call(request, validate(admin.AdminTokenPatch, {"status": status}))
    )
    return back(
        "/console/open/tokens", f"令牌 #{row['id']} 已{'启用' if status == 'enabled' else '停用'}"
    )


# -- usage -----------------------------------------------------------------------------


async def usage_charts(now: datetime | None = None) -> tuple[Chart, Chart]:
    """Calls and cost (in fen) per Beijing day over 30 days, every user and ability."""
    until = now or datetime.now(UTC)
    rows = await logs.daily_usage(None, until - timedelta(days=USAGE_DAYS), until, tz=USAGE_TZ)
    calls: dict[str, int] = defaultdict(int)
    cost: dict[str, int] = defaultdict(int)
    for row in rows:
        day = row["day"].isoformat()
        calls[day] += int(row["calls"])
        cost[day] += int(row["cost"])
    return (
        bar_chart(sorted(calls.items())),
        bar_chart(sorted((day, nano // NANO_PER_FEN) for day, nano in cost.items())),
    )


@page(admin=True)
async def usage(request: Request) -> Response:
    _require_open_api(request)
    calls, cost = await usage_charts()
    context = {"calls": calls, "cost": cost, "section": "open-usage"}
    return render(request, "console/open_usage.html", context)
