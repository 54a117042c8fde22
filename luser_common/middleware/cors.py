"""Build Starlette's CORSMiddleware from plain settings values."""

from __future__ import annotations

from collections.abc import Collection

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ..context import REQUEST_ID_HEADER
from ..errors import ConfigError

__all__ = ["cors_middleware"]

DEFAULT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_HEADERS = ("Authorization", "Content-Type", REQUEST_ID_HEADER)


def cors_middleware(
    origins: Collection[str],
    methods: Collection[str] = DEFAULT_METHODS,
    headers: Collection[str] = DEFAULT_HEADERS,
    credentials: bool = False,
    expose_headers: Collection[str] = (REQUEST_ID_HEADER, "Retry-After"),
    max_age: int = 600,
    origin_regex: str | None = None,
) -> Middleware:
    """``Middleware(CORSMiddleware, ...)`` ready for ``Starlette(middleware=[...])``."""
    if credentials and "*" in origins:
        # Browsers reject "*" with credentials, and echoing any origin would hand
        # every site the user's cookies: insist on an explicit list.
        raise ConfigError("CORS: 允许携带凭据时不能使用通配符来源 '*'", field="cors.origins")
    return Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(methods),
        allow_headers=list(headers),
        allow_credentials=credentials,
        allow_origin_regex=origin_regex,
        expose_headers=list(expose_headers),
        max_age=max_age,
    )
