"""Per-client token-bucket limiting in front of the app; over the limit -> 429 envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import LimitExceeded, NetworkError
from ..http.handlers import send_error
from ..ratelimit import RateLimiter, retry_after_header

__all__ = ["KeyFunc", "RateLimitMiddleware", "RateLimitRule", "client_ip"]

logger = logging.getLogger("luser.ratelimit")

KeyFunc = Callable[[Scope], str | Awaitable[str | None] | None]


def client_ip(scope: Scope) -> str | None:
    """The peer address. Behind a proxy, run uvicorn with ``--proxy-headers`` and
    ``--forwarded-allow-ips`` so this is the real client, not the proxy."""
    client = scope.get("client")
    return client[0] if client else None


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """``limiter`` applies to paths under ``path_prefix`` (and only ``methods``, if given)."""

    path_prefix: str
    limiter: RateLimiter
    methods: Collection[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        base = self.path_prefix.rstrip("/")
        return path == base or path.startswith(base + "/")


class RateLimitMiddleware:
    """Pure ASGI. The first matching rule wins; otherwise ``limiter`` (if any) applies to all.

    A request whose key function returns None is not limited. If the limiter's backend is
    down the request is let through (logged): an outage must not lock every user out.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter | None = None,
        *,
        rules: Sequence[RateLimitRule] = (),
        key_func: KeyFunc = client_ip,
        message: str = "请求过于频繁, 请稍后再试",
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.rules = tuple(rules)
        self.key_func = key_func
        self.message = message

    def _select(self, scope: Scope) -> tuple[str, RateLimiter] | None:
        method, path = scope.get("method", ""), scope.get("path", "")
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.path_prefix, rule.limiter
        return ("*", self.limiter) if self.limiter is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        selected = self._select(scope) if scope["type"] == "http" else None
        if selected is None:
            await self.app(scope, receive, send)
            return
        bucket, limiter = selected
        key = self.key_func(scope)
        if not isinstance(key, str | None):
            key = await key
        if key is None:
            await self.app(scope, receive, send)
            return
        try:
            allowed, retry_after = await limiter.hit(f"{bucket}|{key}")
        except NetworkError:
            logger.warning("rate limiter unavailable, letting %s through", key, exc_info=True)
            allowed, retry_after = True, 0.0
        if allowed:
            await self.app(scope, receive, send)
            return
        seconds = retry_after_header(retry_after)
        err = LimitExceeded(
            self.message, details={"retry_after": int(seconds)}, headers={"Retry-After": seconds}
        )
        await send_error(scope, receive, send, err)
