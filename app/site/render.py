"""Rendering: the Jinja2 environment, pages, error pages and form reading."""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import timedelta, timezone
from typing import Any, TypeVar

import jinja2
import pydantic
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.accounts.models import User
from app.site import csrf, session
from app.web.types import MAX_BIGINT
from luser_common import AppError, BadRequest, Forbidden, NotFound, Unauthorized
from luser_common.http.body import read_body

M = TypeVar("M", bound=pydantic.BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]

FORM_LIMIT = 16 * 1024  # the largest site form (a refund reason) is far below this
MAX_FIELDS = 20

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("app.site", "templates"),
    autoescape=True,  # user text (titles, nicknames, search terms) renders as text
    undefined=jinja2.StrictUndefined,
    enable_async=False,
)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def beijing(value: Any) -> str:
    """A timestamp as Beijing wall-clock time (what the users read)."""
    if value is None:
        return "—"
    return str(value.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M"))


def duration(seconds: int) -> str:
    minutes, secs = divmod(max(seconds, 0), 60)
    return f"{minutes}:{secs:02d}"


def is_hls(url: str) -> bool:
    """An HLS playlist (the provider's transcoded output) rather than a progressive file."""
    return urllib.parse.urlsplit(url).path.lower().endswith(".m3u8")


def nano_yuan(nano: int) -> str:
    """The open API's nano-units (10^9 per yuan) as yuan, cut to the fen."""
    return yuan(nano // 10_000_000)


ENV.filters.update(yuan=yuan, beijing=beijing, duration=duration, nano_yuan=nano_yuan)
ENV.globals["is_hls"] = is_hls

STATUS_NAMES = {
    "pending": "待支付",
    "paid": "已支付",
    "refunded": "已退款",
    "closed": "已关闭",
    "expired": "已过期",
    "draft": "草稿",
    "processing": "处理中",
    "published": "已发布",
    "offline": "已下线",
    "active": "正常",
    "disabled": "已禁用",
}
ENV.globals["status_name"] = lambda s: STATUS_NAMES.get(s, s)


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    site_user: session.SiteUser | None = getattr(request.state, "site_user", None)
    values = {
        "request": request,
        "user": site_user.user if site_user else None,
        "session_expired": bool(site_user and site_user.expired),
        "csrf_token": csrf.csrf_token(request),
        "flash": request.query_params.get("msg", "")[:100],
        **(context or {}),
    }
    html = ENV.get_template(template).render(values)
    return HTMLResponse(html, status_code=status)


class PageError(AppError):
    """An error answered by Starlette itself (405, 404 ...), with its envelope's code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


def error_page(request: Request, err: AppError) -> HTMLResponse:
    titles = {404: "页面不存在", 403: "无权访问", 401: "请先登录", 500: "服务器出错了"}
    response = render(
        request,
        "error.html",
        {"title": titles.get(err.status_code, "请求未完成"), "error": err},
        status=err.status_code,
    )
    for name, value in err.headers.items():
        if name.lower() == "retry-after":
            response.headers[name] = value
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    """To the log-in page, then back: to this page, or for a form, to the page it was on."""
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urllib.parse.urlsplit(request.headers.get("referer", ""))
        same_site = referer.netloc == request.url.netloc
        target = referer.path if same_site and referer.path.startswith("/") else "/"
    return redirect("/login?" + urllib.parse.urlencode({"next": target}))


class LoginRequired(Unauthorized):
    code = "LOGIN_REQUIRED"
    default_message = "请先登录"


def page(*, login: bool = False, admin: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Wrap a site endpoint: load the session, require a login or an admin, turn any
    AppError into a page in the site's style, and write the cookies."""

    def wrap(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            site_user = await session.load_user(request)
            try:
                if (login or admin) and site_user.user is None:
                    response: Response = login_redirect(request)
                elif admin and not _is_admin(site_user.user):
                    raise Forbidden("需要管理员权限")
                else:
                    response = await handler(request)
            except AppError as err:
                response = error_page(request, err)
            session.finish(request, response)
            return csrf.finish(request, response)

        return endpoint

    return wrap


def _is_admin(user: User | None) -> bool:
    return bool(user and user.is_admin)


def current_user(request: Request) -> User:
    site_user: session.SiteUser = request.state.site_user
    if site_user.user is None:
        raise LoginRequired()
    return site_user.user


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, after its CSRF token is checked; size and field count bounded."""
    body = await read_body(request, FORM_LIMIT)
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad_form() from exc
    form = dict(pairs)
    csrf.check(request, form.pop(csrf.CSRF_FIELD, None))
    return form


def _bad_form() -> AppError:
    return BadRequest("表单内容无法解析")


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate with the API's own input model: the same limits and messages."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise AppError.from_exception(exc) from exc


def path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params.get(name, "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()) or not (
        1 <= int(raw) <= MAX_BIGINT
    ):
        raise NotFound("页面不存在")
    return int(raw)


def int_param(request: Request, name: str, default: int = 1, upper: int = 10_000) -> int:
    raw = request.query_params.get(name, "")
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= upper:
        return int(raw)
    return default
