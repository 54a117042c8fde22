"""One log line per request: method, path, status, duration, request id, client."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..context import request_id_from_scope

__all__ = ["AccessLogMiddleware"]


class AccessLogMiddleware:
    """Pure ASGI. Place it inside RequestIdMiddleware so the line carries the request id."""

    def __init__(
        self,
        app: ASGIApp,
        logger: logging.Logger | str = "luser.access",
        skip_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.skip_paths = frozenset(skip_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.skip_paths:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before responding
        start = time.perf_counter()

        async def send_capturing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing)
        finally:
            self._log(scope, status, (time.perf_counter() - start) * 1000)

    def _log(self, scope: Scope, status: int, duration_ms: float) -> None:
        client = scope.get("client")
        client_host = client[0] if client else "-"
        request_id = request_id_from_scope(scope) or "-"
        method, path = scope.get("method", ""), scope.get("path", "")
        self.logger.info(
            "%s %s %d %.1fms rid=%s client=%s",
            method,
            path,
            status,
            duration_ms,
            request_id,
            client_host,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "request_id": request_id,
                "client": client_host,
            },
        )
