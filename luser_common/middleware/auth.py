"""Bearer-JWT authentication: verified claims go to ``request.state.claims``.

Paths under ``public_paths`` skip authentication (claims None, any token ignored).
With ``optional=True`` a missing token is fine (claims None) but a present one must be
valid. The middleware only proves who
the caller is; whether that user is active or allowed is the app's business.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AppError, InvalidToken, TokenExpired, Unauthorized
from ..http.handlers import send_error
from ..jwt_codec import JwtCodec

__all__ = ["CLAIMS_SCOPE_KEY", "AuthMiddleware", "get_claims", "parse_bearer", "require_claims"]

CLAIMS_SCOPE_KEY = "luser.claims"


def parse_bearer(authorization: str | None) -> str:
    """The token in ``Authorization: Bearer <token>``, else Unauthorized."""
    if not authorization:
        raise Unauthorized("缺少 Authorization 请求头")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Authorization 必须使用 Bearer 方案")
    token = token.strip()
    if not token:
        raise Unauthorized("缺少访问令牌")
    return token


def _under(path: str, prefix: str) -> bool:
    # Segment-aware: "/api/public" covers "/api/public/x" but not "/api/publicity".
    base = prefix.rstrip("/")
    return path == base or path.startswith(base + "/") or prefix == "/"


class AuthMiddleware:
    """Pure ASGI; failures leave as 401 envelopes with ``WWW-Authenticate: Bearer``."""

    def __init__(
        self,
        app: ASGIApp,
        codec: JwtCodec,
        *,
        public_paths: Collection[str] = (),
        optional: bool = False,
    ) -> None:
        self.app = app
        self.codec = codec
        self.public_paths = tuple(public_paths)
        self.optional = optional

    def _is_public(self, scope: Scope) -> bool:
        # CORS preflights carry no credentials by design.
        if scope.get("method") == "OPTIONS":
            return True
        path = scope.get("path", "")
        return any(_under(path, prefix) for prefix in self.public_paths)

    def _decode(self, header: str | None) -> dict[str, Any]:
        return self.codec.decode(parse_bearer(header))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        try:
            if self._is_public(scope) or (header is None and self.optional):
                claims = None
            else:
                claims = self._decode(header)
        except Unauthorized as err:
            if scope["type"] != "http":
                raise
            await send_error(scope, receive, send, _with_challenge(err))
            return
        scope[CLAIMS_SCOPE_KEY] = claims
        scope.setdefault("state", {})["claims"] = claims
        await self.app(scope, receive, send)


def _with_challenge(err: AppError) -> AppError:
    # RFC 6750 §3: tell the client which scheme, and whether its token was the problem.
    bad_token = isinstance(err, InvalidToken | TokenExpired)
    challenge = 'Bearer error="invalid_token"' if bad_token else "Bearer"
    err.headers.setdefault("WWW-Authenticate", challenge)
    return err


def get_claims(conn: HTTPConnection) -> dict[str, Any] | None:
    """The verified claims of this request, or None (public path, optional mode)."""
    claims = conn.scope.get(CLAIMS_SCOPE_KEY)
    return claims if isinstance(claims, dict) else None


def require_claims(conn: HTTPConnection) -> dict[str, Any]:
    """Claims, or Unauthorized: for endpoints behind an optional or public prefix."""
    claims = get_claims(conn)
    if claims is None:
        raise Unauthorized()
    return claims
