"""The web site: subscriber pages and the operator console, server-rendered.

``install(app)`` adds the routes (after every API route, so none is shadowed), the
vendored assets under ``/site-static``, and page-style 404/500 answers for browsers
outside ``/api``. See docs/site.md.
"""

from __future__ import annotations

import contextlib
import json
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.site import (
    checkout,
    console,
    console_bills,
    console_catalog,
    console_open,
    console_revenue,
    console_upload,
    keys,
    pages,
)
from app.site.render import PageError, error_page
from app.site.session import load_user
from luser_common import AppError, InternalServerError, NotFound

__all__ = ["install", "routes"]

logger = logging.getLogger("luser.site")


def routes() -> list[Route | Mount]:
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/videos/{id}", pages.video, methods=["GET"]),
        Route("/signup", pages.signup_form, methods=["GET"]),
        Route("/signup", pages.signup, methods=["POST"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/plans", checkout.plans, methods=["GET"]),
        Route("/checkout", checkout.checkout, methods=["POST"]),
        Route("/orders/{id}", checkout.order_page, methods=["GET"]),
        Route("/orders/{id}/pay", checkout.pay_again, methods=["POST"]),
        Route("/orders/{id}/status", checkout.order_status, methods=["GET"]),
        Route("/orders/{id}/qr.png", checkout.order_qr, methods=["GET"]),
        Route("/me/orders", checkout.my_orders, methods=["GET"]),
        Route("/me/subscription", checkout.my_subscription, methods=["GET"]),
        Route("/me/keys", keys.keys, methods=["GET"]),
        Route("/me/keys", keys.create_key, methods=["POST"]),
        Route("/me/keys/{id}/{action}", keys.key_action, methods=["POST"]),
        Route("/console", console.videos, methods=["GET"]),
        Route("/console/videos", console.videos, methods=["GET"]),
        Route("/console/videos", console.create_video, methods=["POST"]),
        Route("/console/videos/{id}/upload", console_upload.upload_page, methods=["GET"]),
        Route("/console/videos/{id}/status", console_upload.video_status, methods=["GET"]),
        Route(
            "/console/videos/{id}/credentials",
            console_upload.upload_credentials,
            methods=["POST"],
        ),
        Route("/console/videos/{id}/{action}", console.video_action, methods=["POST"]),
        Route("/console/users", console.users, methods=["GET"]),
        Route("/console/users/{id}", console.user_detail, methods=["GET"]),
        Route("/console/users/{id}/{action}", console.user_status, methods=["POST"]),
        Route("/console/orders", console.orders, methods=["GET"]),
        Route("/console/orders/{id}/refund", console.refund, methods=["POST"]),
        Route("/console/categories", console_catalog.categories, methods=["GET"]),
        Route("/console/categories", console_catalog.create_category, methods=["POST"]),
        Route("/console/categories/{id}/delete", console_catalog.delete_category, methods=["POST"]),
        Route("/console/plans", console_catalog.plans, methods=["GET"]),
        Route("/console/plans", console_catalog.create_plan, methods=["POST"]),
        Route("/console/plans/{id}/toggle", console_catalog.toggle_plan, methods=["POST"]),
        Route("/console/revenue", console_revenue.revenue, methods=["GET"]),
        Route("/console/reconcile", console_revenue.reconcile, methods=["POST"]),
        Route("/console/bills", console_bills.bills, methods=["GET"]),
        Route("/console/bills", console_bills.reconcile, methods=["POST"]),
        Route("/console/bills/{id}", console_bills.bill, methods=["GET"]),
        Route("/console/open/channels", console_open.channels, methods=["GET"]),
        Route("/console/open/channels", console_open.create_channel, methods=["POST"]),
        Route(
            "/console/open/channels/{id}/{action}", console_open.channel_action, methods=["POST"]
        ),
        Route("/console/open/prices", console_open.prices, methods=["GET"]),
        Route("/console/open/prices", console_open.set_price, methods=["POST"]),
        Route("/console/open/groups", console_open.save_group, methods=["POST"]),
        Route("/console/open/routes", console_open.save_route, methods=["POST"]),
        Route("/console/open/routes/{id}/delete", console_open.delete_route, methods=["POST"]),
        Route("/console/open/tokens", console_open.tokens, methods=["GET"]),
        Route("/console/open/tokens", console_open.create_token, methods=["POST"]),
        Route("/console/open/tokens/{id}/{action}", console_open.token_action, methods=["POST"]),
        Route("/console/open/usage", console_open.usage, methods=["GET"]),
        Mount("/site-static", StaticFiles(packages=[("app.site", "static")]), name="site-static"),
    ]


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def install(app: Starlette) -> None:
    """Add the site to ``app``; call after every feature that adds API routes."""
    app.router.routes.extend(routes())
    api_http = app.exception_handlers[HTTPException]
    api_crash = app.exception_handlers[Exception]

    async def http_error(request: Request, exc: Exception) -> Response:
        response: Response = await api_http(request, exc)  # logs it; the envelope's words
        if not _wants_page(request) or response.status_code < 400:
            return response
        await _load_session(request)
        if response.status_code == 404:
            return error_page(request, NotFound("页面不存在"))
        try:
            envelope = json.loads(bytes(response.body))["error"]
            err = PageError(response.status_code, envelope["code"], envelope["message"])
        except (ValueError, KeyError, TypeError):
            err = PageError(response.status_code, "HTTP_ERROR", "请求失败")
        return error_page(request, err)

    async def crash(request: Request, exc: Exception) -> Response:
        response: Response = await api_crash(request, exc)  # logs the traceback
        if _wants_page(request):
            try:
                return error_page(request, InternalServerError())
            except Exception:  # the page itself failed: the envelope still answers
                logger.exception("the 500 page failed to render")
        return response

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crash)


async def _load_session(request: Request) -> None:
    with contextlib.suppress(AppError):  # the 404 page renders for anyone
        await load_user(request)
