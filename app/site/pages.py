"""Subscriber pages: catalog, video player, sign up, log in, log out."""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from app.accounts.routes.auth import LoginBody, RegisterBody
from app.catalog.routes.videos import VideoListQuery
from app.config_features import RegistrationClosed
from app.site import session
from app.site.context import services
from app.site.render import (
    page,
    path_id,
    read_form,
    redirect,
    render,
    validate,
)
from luser_common import AppError
from luser_common.http.body import parse_query

PAGE_SIZE = 12


@page()
async def home(request: Request) -> Response:
    query = parse_query(request, VideoListQuery)
    svc = services(request)
    categories = await svc.catalog.categories()
    videos = await svc.catalog.public_videos(
        query.page, PAGE_SIZE, category_id=query.category_id, q=query.q or None, sort=query.sort
    )
    return render(
        request,
        "home.html",
        {"categories": categories, "videos": videos, "query": query, "link": _page_link(query)},
    )


def _page_link(query: VideoListQuery) -> str:
    keep = {"q": query.q or "", "category_id": query.category_id or "", "sort": query.sort}
    return "/?" + urllib.parse.urlencode({k: v for k, v in keep.items() if v}) + "&page="


@page()
async def video(request: Request) -> Response:
    svc = services(request)
    card = await svc.catalog.public_card(path_id(request))
    user = request.state.site_user.user
    grant, refused = None, None
    if user is not None:
        try:
            client = request.client.host if request.client else None
            grant = await svc.player.play(user, card.id, client)
        except AppError as err:  # preview not offered, media not ready: say why, keep the page
            refused = err
    return render(request, "video.html", {"video": card, "grant": grant, "refused": refused})


@page()
async def signup_form(request: Request) -> Response:
    return render(request, "signup.html", {"form": {}, "error": None})


@page()
async def signup(request: Request) -> Response:
    form = await read_form(request)
    if not request.app.state.config.features.registration:
        raise RegistrationClosed()  # the same flag and error as the API's register route
    account = form.get("account", "").strip()
    data = {
        "email": account if "@" in account else None,
        "phone": None if "@" in account or not account else account,
        "password": form.get("password", ""),
        "nickname": form.get("nickname", ""),
    }
    accounts = services(request).accounts
    try:
        body = validate(RegisterBody, data)
        await accounts.register(
            email=body.email, phone=body.phone, password=body.password, nickname=body.nickname
        )
        return await _log_in(request, account, body.password, form.get("next", ""))
    except AppError as err:
        keep = {"account": account, "nickname": form.get("nickname", "")}
        return render(request, "signup.html", {"form": keep, "error": err}, err.status_code)


@page()
async def login_form(request: Request) -> Response:
    return render(request, "login.html", {"form": {}, "error": None, "next": _next(request)})


@page()
async def login(request: Request) -> Response:
    form = await read_form(request)
    try:
        fields = {"account": form.get("account", ""), "password": form.get("password", "")}
        body = validate(LoginBody, fields)
        return await _log_in(request, body.account, body.password, form.get("next", ""))
    except AppError as err:
        keep = {"account": form.get("account", "")}
        context = {"form": keep, "error": err, "next": form.get("next", "")}
        return render(request, "login.html", context, err.status_code)


async def _log_in(request: Request, account: str, password: str, target: str) -> Response:
    client = request.client.host if request.client else "unknown"
    _, pair = await services(request).accounts.login(account, password, client)
    response = redirect(_safe_next(target))
    session.set_session(response, request.app.state.config, pair)
    return response


def _next(request: Request) -> str:
    return _safe_next(request.query_params.get("next", ""))


def _safe_next(target: str) -> str:
    # Only a path on this site: never an open redirect to another host.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target[:500]
    return "/"


@page()
async def logout(request: Request) -> Response:
    await read_form(request)
    tokens, _ = session.read_tokens(request, request.app.state.config)
    if tokens is not None:
        await services(request).accounts.logout(tokens["r"])
    request.state.logged_out = True
    return redirect("/?msg=" + urllib.parse.quote("已退出登录"))
