"""Bearer authentication for operations declared ``access="user"`` or ``"admin"``.

Every authenticated request reloads the user, so disabling an account or changing
its role takes effect at once, not when the access token expires.
"""

from __future__ import annotations

from starlette.requests import Request

from app.accounts.models import User
from luser_common import AppError, Forbidden, InvalidToken, TokenExpired
from luser_common.middleware import parse_bearer


async def authenticate(request: Request, admin: bool = False) -> User:
    try:
        token = parse_bearer(request.headers.get("authorization"))
        user: User = await request.app.state.services.accounts.authenticate(token)
    except AppError as err:
        if err.status_code == 401:
            # RFC 6750 section 3: name the scheme and whether the token itself was bad.
            bad = isinstance(err, InvalidToken | TokenExpired)
            err.headers.setdefault(
                "WWW-Authenticate", 'Bearer error="invalid_token"' if bad else "Bearer"
            )
        raise
    if admin and not user.is_admin:
        raise Forbidden("需要管理员权限")
    return user
