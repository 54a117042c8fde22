"""My API keys: the open API's self-service (create, disable, delete) and 30 days of
usage drawn as a chart. Changes run the ``/api/tokens`` operations' own handlers, so
the token cache is invalidated exactly as the API does it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.config_features import OpenApiDisabled
from app.open_api import logs, manage
from app.open_api.routes import self_service
from app.open_api.routes.self_service import TokenIn, TokenPatch
from app.site.chart import Chart, bar_chart
from app.site.console import back
from app.site.render import current_user, page, path_id, read_form, render, validate
from app.web.operation import Call
from luser_common import AppError

USAGE_DAYS = 30
USAGE_TZ = "Asia/Shanghai"  # the day boundaries users live by


def _require_open_api(request: Request) -> None:
    if not request.app.state.config.features.open_api:
        raise OpenApiDisabled()  # the same flag and error as /api/tokens


async def usage_chart(user_id: int, now: datetime | None = None) -> Chart:
    """Calls per Beijing day over the last 30 days, every ability summed."""
    until = now or datetime.now(UTC)
    since = until - timedelta(days=USAGE_DAYS)
    rows = await logs.daily_usage(user_id, since, until, tz=USAGE_TZ)
    calls: dict[str, int] = defaultdict(int)
    for row in rows:
        calls[row["day"].isoformat()] += int(row["calls"])
    return bar_chart(sorted(calls.items()))


async def _keys_page(
    request: Request,
    *,
    created: dict[str, Any] | None = None,
    error: AppError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    _require_open_api(request)
    user = current_user(request)
    context = {
        "tokens": await manage.list_tokens(user.id, limit=200),
        "wallet": await manage.wallet(user.id),
        "chart": await usage_chart(user.id),
        "created": created,
        "error": error,
        "form": form or {},
    }
    return render(request, "keys.html", context, error.status_code if error else 200)


@page(login=True)
async def keys(request: Request) -> Response:
    return await _keys_page(request)


@page(login=True)
async def create_key(request: Request) -> Response:
    _require_open_api(request)
    form = await read_form(request)
    try:
        body = validate(TokenIn, {"name": form.get("name", "")})
        made = await self_service.create_token.handler(
            Call(request, body=body, user=current_user(request))
        )
    except AppError as err:
        return await _keys_page(request, error=err, form=form)
    # The key is shown once, on this response; only its hash is stored.
    return await _keys_page(request, created=made)


@page(login=True)
async def key_action(request: Request) -> Response:
    _require_open_api(request)
    await read_form(request)
    call = Call(request, user=current_user(request))
    token_id = path_id(request)
    if request.path_params["action"] == "delete":
        await self_service.delete_token.handler(call)
        return back("/me/keys", f"令牌 #{token_id} 已删除")
    status = "disabled" if request.path_params["action"] == "disable" else "enabled"
    call.body = validate(TokenPatch, {"status": status})
    await self_service.update_token.handler(call)
    return back("/me/keys", f"令牌 #{token_id} 已{'停用' if status == 'disabled' else '启用'}")
