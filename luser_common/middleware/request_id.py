"""Give every request an id: a sane incoming ``X-Request-ID`` is kept, anything else replaced."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..context import (
    REQUEST_ID_HEADER,
    REQUEST_ID_SCOPE_KEY,
    current_request_id,
    reset_request_id,
    set_request_id,
)

__all__ = ["RequestIdMiddleware", "current_request_id", "is_valid_request_id", "new_request_id"]

# Ids end up in logs and response headers; a strict alphabet keeps both injection-free.
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def is_valid_request_id(value: str | None) -> bool:
    return value is not None and _VALID_ID.fullmatch(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI. Sets the contextvar, ``scope["state"]["request_id"]`` and the response header."""

    def __init__(
        self,
        app: ASGIApp,
        header_name: str = REQUEST_ID_HEADER,
        generator: Callable[[], str] = new_request_id,
    ) -> None:
        self.app = app
        self.header_name = header_name
        self.generator = generator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(self.header_name)
        request_id = incoming if is_valid_request_id(incoming) else self.generator()
        assert request_id is not None
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[self.header_name] = request_id
            await send(message)

        token = set_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)
