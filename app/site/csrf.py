"""CSRF tokens for every form: a signed double-submit cookie.

The ``luser_csrf`` cookie holds ``random.mac``; every form repeats it in a hidden
``csrf_token`` field. Another site can neither read the cookie nor mint a value
with a valid MAC, so a forged POST fails with a 403 page. SameSite=Lax on the
session cookie is the second line.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from app.settings import AppConfig
from app.site.session import is_secure, site_key
from luser_common import Forbidden

CSRF_COOKIE = "luser_csrf"
CSRF_FIELD = "csrf_token"


class CsrfFailed(Forbidden):
    code = "CSRF_FAILED"
    default_message = "页面已过期或来源不明 (CSRF 校验失败), 请刷新页面后重试"


def _mac(config: AppConfig, nonce: str) -> str:
    return hmac.new(site_key(config, "luser-site-csrf"), nonce.encode(), "sha256").hexdigest()


def _valid(config: AppConfig, token: str | None) -> bool:
    if not token or "." not in token or len(token) > 200:
        return False
    nonce, mac = token.split(".", 1)
    return hmac.compare_digest(_mac(config, nonce), mac)


def csrf_token(request: Request) -> str:
    """The token for this browser (a new one is set on the response by :func:`finish`)."""
    config: AppConfig = request.app.state.config
    token = request.cookies.get(CSRF_COOKIE)
    if _valid(config, token):
        assert token is not None
        return token
    fresh: str | None = getattr(request.state, "new_csrf", None)
    if fresh is None:
        nonce = secrets.token_urlsafe(18)
        fresh = f"{nonce}.{_mac(config, nonce)}"
        request.state.new_csrf = fresh
    return fresh


def check(request: Request, submitted: object) -> None:
    config: AppConfig = request.app.state.config
    cookie = request.cookies.get(CSRF_COOKIE)
    if not (
        isinstance(submitted, str)
        and _valid(config, cookie)
        and cookie is not None
        and hmac.compare_digest(cookie, submitted)
    ):
        raise CsrfFailed()


def finish(request: Request, response: Response) -> Response:
    fresh: str | None = getattr(request.state, "new_csrf", None)
    if fresh is not None:
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            httponly=True,
            secure=is_secure(request.app.state.config),
            samesite="lax",
        )
    return response
