"""Give every request an id: a sane incoming ``X-Request-ID`` is kept, anything else replaced."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
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


# The version (4) and variant (RFC 4122) bits of a random UUID.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


# Random bytes are read from the OS 256 ids at a time: one system call per request
# showed up in profiles of the busiest endpoints.
_BATCH = 16 * 256
_random = b""
_offset = _BATCH
_random_lock = threading.Lock()


def _random16() -> bytes:
    global _random, _offset
    with _random_lock:
        if _offset >= _BATCH:
            _random, _offset = os.urandom(_BATCH), 0
        chunk = _random[_offset : _offset + 16]
        _offset += 16
        return chunk


def _forget_random() -> None:
    # A forked worker must not hand out the ids its parent had buffered (nor inherit a
    # lock another thread of the parent held).
    global _offset, _random_lock
    _offset = _BATCH
    _random_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_random)


def new_request_id() -> str:
    """A random UUID4 as 32 hex digits, like ``uuid.uuid4().hex`` but without building a
    UUID object per request (it costs several times the random bytes themselves)."""
    value = (int.from_bytes(_random16()) & _UUID4_CLEAR) | _UUID4_SET
    return f"{value:032x}"


def _header(scope: Scope, key: bytes) -> str | None:
    """The first ``key`` header of the request (ASGI names are lowercase bytes)."""
    for name, value in scope.get("headers") or ():
        if name == key:
            return value.decode("latin-1")
    return None


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
        self._key = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, self._key)
        request_id = incoming if is_valid_request_id(incoming) else self.generator()
        assert request_id is not None
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        scope.setdefault("state", {})["request_id"] = request_id
        key, value = self._key, request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                if any(name == key for name, _ in headers):  # the app set one: replace it
                    message["headers"] = headers
                    MutableHeaders(scope=message)[self.header_name] = request_id
                else:  # the usual case: append without MutableHeaders' bookkeeping
                    headers.append((key, value))
                    message["headers"] = headers
            await send(message)

        token = set_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)
