"""The current request's id, readable anywhere in the request's task (logs, envelopes)."""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "REQUEST_ID_HEADER",
    "REQUEST_ID_SCOPE_KEY",
    "current_request_id",
    "request_id_from_scope",
    "reset_request_id",
    "set_request_id",
]

REQUEST_ID_HEADER = "X-Request-ID"
# Also kept in the ASGI scope: Starlette's last-resort handler runs in the outermost
# middleware, after the contextvar has been reset, but it still sees the scope.
REQUEST_ID_SCOPE_KEY = "luser.request_id"

_request_id: ContextVar[str | None] = ContextVar("luser_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served by this task, or None outside a request."""
    return _request_id.get()


def set_request_id(request_id: str | None) -> Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def request_id_from_scope(scope: MutableMapping[str, Any]) -> str | None:
    value = scope.get(REQUEST_ID_SCOPE_KEY)
    return value if isinstance(value, str) else current_request_id()
