"""Pure ASGI middleware. Suggested order, outermost first::

Starlette(middleware=[
    Middleware(RequestIdMiddleware),
    Middleware(AccessLogMiddleware),
    cors_middleware(["https://example.com"]),
    Middleware(RateLimitMiddleware, limiter),
    Middleware(AuthMiddleware, codec, public_paths=["/api/v1/auth", "/health"]),
], exception_handlers=exception_handlers)
"""

from ..context import current_request_id
from .access_log import AccessLogMiddleware
from .auth import AuthMiddleware, get_claims, parse_bearer, require_claims
from .cors import cors_middleware
from .rate_limit import RateLimitMiddleware, RateLimitRule, client_ip
from .request_id import RequestIdMiddleware, is_valid_request_id, new_request_id

__all__ = [
    "AccessLogMiddleware",
    "AuthMiddleware",
    "RateLimitMiddleware",
    "RateLimitRule",
    "RequestIdMiddleware",
    "client_ip",
    "cors_middleware",
    "current_request_id",
    "get_claims",
    "is_valid_request_id",
    "new_request_id",
    "parse_bearer",
    "require_claims",
]
