"""The operator console (admins only): videos, users, orders and refunds.

Each action calls the same service method, with the same input model, as the
admin API route it mirrors.
"""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from app.accounts.routes.admin import _set_status
from app.accounts.service import UserFilter
from app.accounts.status import UserStatus
from app.catalog.routes.admin import AdminVideoQuery, VideoCreateBody
from app.commerce.routes.admin import AdminOrdersQuery, RefundIn
from app.site.context import services
from app.site.render import (
    current_user,
    int_param,
    page,
    path_id,
    read_form,
    redirect,
    render,
    validate,
    yuan,
)
from app.web.operation import Call
from luser_common import AppError, ValidationError
from luser_common.http.body import parse_query

PAGE_SIZE = 20


def back(path: str, message: str) -> Response:
    return redirect(f"{path}?msg={urllib.parse.quote(message)}")


@page(admin=True)
async def videos(request: Request) -> Response:
    return await _videos_page(request, {}, None)


async def _videos_page(request: Request, form: dict[str, str], error: AppError | None) -> Response:
    query = parse_query(request, AdminVideoQuery)
    catalog = services(request).catalog
    found = await catalog.admin_videos(
        query.page, PAGE_SIZE, status=query.status, q=query.q or None
    )
    context = {
        "videos": found,
        "query": query,
        "categories": await catalog.categories(),
        "form": form,
        "error": error,
    }
    return render(request, "console/videos.html", context, error.status_code if error else 200)


NUMBER_FIELDS = ("duration_seconds", "preview_seconds", "required_level")


@page(admin=True)
async def create_video(request: Request) -> Response:
    form = await read_form(request)
    try:
        data: dict[str, object] = {
            name: form.get(name, "") for name in ("title", "description", "provider")
        }
        if form.get("media_id", "").strip():
            data["media_id"] = form["media_id"]
        if form.get("category_id", "").strip():
            data["category_id"] = _number(form, "category_id")
        for name in NUMBER_FIELDS:
            if form.get(name, "").strip():
                data[name] = _number(form, name)
        body = validate(VideoCreateBody, data)
        video = await services(request).catalog.create_video(body.model_dump())
    except AppError as err:
        return await _videos_page(request, form, err)
    # A draft without media gets its file next, from the browser (console_upload).
    where = "/console/videos" if video.media_id else f"/console/videos/{video.id}/upload"
    return back(where, f"视频 #{video.id} “{video.title}” 已创建 (草稿)")


def _number(form: dict[str, str], name: str) -> int:
    raw = form[name].strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ValidationError("请输入非负整数", field=name)
    return int(raw)


VIDEO_ACTIONS = {"publish": "已发布", "offline": "已下线", "delete": "已删除"}


@page(admin=True)
async def video_action(request: Request) -> Response:
    await read_form(request)
    catalog = services(request).catalog
    video_id, action = path_id(request), request.path_params["action"]
    if action == "publish":
        await catalog.publish(video_id)
    elif action == "offline":
        await catalog.take_offline(video_id)
    elif action == "delete":
        await catalog.delete_video(video_id)
    else:
        raise ValidationError("未知操作", field="action")
    return back("/console/videos", f"视频 #{video_id} {VIDEO_ACTIONS[action]}")


@page(admin=True)
async def users(request: Request) -> Response:
    # The admin API's user search: digits look for a phone number, anything else an email.
    q = request.query_params.get("q", "").strip()[:100]
    where = UserFilter(phone=q) if q.isdigit() else UserFilter(email=q or None)
    found = await services(request).accounts.search(int_param(request, "page"), PAGE_SIZE, where)
    return render(request, "console/users.html", {"users": found, "q": q})


@page(admin=True)
async def user_detail(request: Request) -> Response:
    user = await services(request).accounts.user(path_id(request))
    shop = services(request).commerce
    context = {
        "member": user,
        "sub": await shop.subscriptions.status(user.id),
        "orders": await shop.orders.page(1, PAGE_SIZE, user_id=user.id),
    }
    return render(request, "console/user.html", context)


@page(admin=True)
async def user_status(request: Request) -> Response:
    await read_form(request)
    disable = request.path_params["action"] == "disable"
    status = UserStatus.DISABLED if disable else UserStatus.ACTIVE
    # The admin route's own helper: the "not yourself" rule lives there.
    user = await _set_status(Call(request, user=current_user(request)), status)
    done = "已禁用" if disable else "已启用"
    return back("/console/users", f"用户 #{user.id} {done}")


@page(admin=True)
async def orders(request: Request) -> Response:
    query = parse_query(request, AdminOrdersQuery)
    found = await services(request).commerce.orders.page(
        query.page, PAGE_SIZE, user_id=query.user_id, status=query.status
    )
    return render(request, "console/orders.html", {"orders": found, "query": query})


@page(admin=True)
async def refund(request: Request) -> Response:
    form = await read_form(request)
    raw = form.get("amount_yuan", "").strip()
    amount = yuan_to_fen(raw, "amount_yuan") if raw else None
    body = validate(RefundIn, {"amount_fen": amount, "reason": form.get("reason", "")})
    order_id = path_id(request)
    done = await services(request).commerce.refunds.refund_order(
        order_id, body.amount_fen, body.reason, current_user(request).id
    )
    return back("/console/orders", f"订单 #{order_id} 已退款 {yuan(done.amount_fen)} 元")


def yuan_to_fen(yuan: str, field: str) -> int:
    """An amount typed in yuan ("19.9") as integer fen; no float on the way."""
    whole, _, cents = yuan.strip().partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 10) or not (
        cents == "" or (cents.isascii() and cents.isdigit() and len(cents) <= 2)
    ):
        raise ValidationError("金额格式: 元, 最多两位小数", field=field)
    return int(whole) * 100 + int(cents.ljust(2, "0"))
