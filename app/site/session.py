"""Cookie sessions for the web site, beside the JWT API.

The session cookie holds the same token pair the API hands out (``Accounts.login``),
signed with a key derived from ``jwt.secret``: every request is authenticated by
``Accounts.authenticate`` and a stale access token is rotated by ``Accounts.refresh``,
so disabling an account, changing a password or logging out elsewhere ends the site
session by the accounts service's own rules. The cookie is HttpOnly, SameSite=Lax,
and Secure in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from app.accounts.models import User
from app.accounts.service import TokenPair
from app.config_checks import PRODUCTION_ENVS
from app.settings import AppConfig
from app.site.context import services
from luser_common import AppError, TokenExpired

SESSION_COOKIE = "luser_session"
SALT = "luser-site-session"


@dataclass(frozen=True)
class SiteUser:
    """Who is asking: the user (or None), and whether a session just ran out."""

    user: User | None
    expired: bool = False


def site_key(config: AppConfig, purpose: str) -> bytes:
    """A per-purpose key derived from the JWT secret: one secret to rotate, not three."""
    secret = config.jwt.secret.get_secret_value().encode()
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def _serializer(config: AppConfig) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(site_key(config, SALT), salt=SALT)


def is_secure(config: AppConfig) -> bool:
    return config.env in PRODUCTION_ENVS


def set_session(response: Response, config: AppConfig, pair: TokenPair) -> None:
    value = _serializer(config).dumps({"a": pair.access_token, "r": pair.refresh_token})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=pair.refresh_expires_in,
        httponly=True,
        secure=is_secure(config),
        samesite="lax",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")


def read_tokens(request: Request, config: AppConfig) -> tuple[dict[str, str] | None, bool]:
    """The cookie's tokens, and whether a cookie was present but no longer valid."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None, False
    try:
        data = _serializer(config).loads(raw, max_age=config.jwt.refresh_ttl_seconds)
    except SignatureExpired:
        return None, True
    except (BadSignature, json.JSONDecodeError, UnicodeDecodeError):
        return None, True
    if not (isinstance(data, dict) and isinstance(data.get("a"), str) and data.get("r")):
        return None, True
    return data, False


async def load_user(request: Request) -> SiteUser:
    """Authenticate the session cookie; a rotated token pair is kept for the response.

    Cached on the request: one lookup per page.
    """
    cached: SiteUser | None = getattr(request.state, "site_user", None)
    if cached is not None:
        return cached
    config: AppConfig = request.app.state.config
    tokens, expired = read_tokens(request, config)
    found = SiteUser(None, expired)
    if tokens is not None:
        found = await _authenticate(request, tokens)
    request.state.site_user = found
    return found


async def _authenticate(request: Request, tokens: dict[str, str]) -> SiteUser:
    accounts = services(request).accounts
    try:
        return SiteUser(await accounts.authenticate(tokens["a"]))
    except TokenExpired:
        pass
    except AppError:
        return SiteUser(None, expired=True)
    try:
        pair: TokenPair = await accounts.refresh(tokens["r"])
        user = await accounts.authenticate(pair.access_token)
    except AppError:
        return SiteUser(None, expired=True)
    request.state.new_session = pair
    return SiteUser(user)


def finish(request: Request, response: Response) -> Response:
    """Write a rotated pair, or drop a dead cookie, onto the outgoing response."""
    pair: TokenPair | None = getattr(request.state, "new_session", None)
    site_user: SiteUser | None = getattr(request.state, "site_user", None)
    if getattr(request.state, "logged_out", False):
        clear_session(response)
    elif pair is not None:
        set_session(response, request.app.state.config, pair)
    elif site_user is not None and site_user.expired:
        clear_session(response)
    return response
