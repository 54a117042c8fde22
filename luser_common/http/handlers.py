"""Starlette exception handlers that turn every error into the luser error envelope.

Register them with ``install_error_handlers(app)`` or ``Starlette(exception_handlers=
exception_handlers)``. The AppError handler covers the whole subtree; HTTPException
covers Starlette's own 404/405/413; the ``Exception`` handler is Starlette's last resort
(it runs in the outermost ServerErrorMiddleware) and never shows exception text.
Note: ``Starlette(debug=True)`` bypasses that last handler and shows tracebacks; never
enable it outside local development.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler, Receive, Scope, Send

from ..context import request_id_from_scope
from ..errors import AppError, InternalServerError
from .envelope import error_response

__all__ = [
    "app_error_handler",
    "exception_handlers",
    "http_exception_handler",
    "install_error_handlers",
    "log_error",
    "send_error",
    "unhandled_exception_handler",
]

logger = logging.getLogger("luser.errors")

# Starlette/HTTP statuses mapped to our codes and Chinese messages.
_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "请求参数错误"),
    401: ("UNAUTHORIZED", "未登录或登录已失效"),
    403: ("FORBIDDEN", "没有权限执行此操作"),
    404: ("NOT_FOUND", "请求的资源不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    406: ("NOT_ACCEPTABLE", "无法提供请求的响应格式"),
    408: ("REQUEST_TIMEOUT", "请求超时"),
    409: ("CONFLICT", "操作冲突"),
    410: ("GONE", "资源已不存在"),
    411: ("LENGTH_REQUIRED", "缺少 Content-Length"),
    413: ("PAYLOAD_TOO_LARGE", "请求体过大"),
    414: ("URI_TOO_LONG", "请求地址过长"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型"),
    422: ("VALIDATION_ERROR", "参数校验失败"),
    429: ("LIMIT_EXCEEDED", "请求过于频繁"),
    500: ("INTERNAL_ERROR", "服务器内部错误"),
    501: ("NOT_IMPLEMENTED", "功能未实现"),
    502: ("EXTERNAL_SERVICE_ERROR", "外部服务调用失败"),
    503: ("SERVICE_UNAVAILABLE", "服务暂不可用"),
    504: ("TIMEOUT", "操作超时"),
}


class _HttpStatusError(AppError):
    """An HTTPException re-expressed as an AppError; status and code are per instance."""

    def __init__(self, status: int, code: str, message: str, headers: Any = None) -> None:
        super().__init__(message, headers=headers)
        self.status_code = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


def _from_http_exception(exc: HTTPException) -> AppError:
    status = exc.status_code
    code, message = _HTTP_ERRORS.get(status) or _fallback(status)
    return _HttpStatusError(status, code, message, headers=exc.headers)


def _fallback(status: int) -> tuple[str, str]:
    try:
        code = HTTPStatus(status).name
    except ValueError:
        code = "HTTP_ERROR"
    return code, "服务器错误" if status >= 500 else "请求失败"


def log_error(err: AppError, method: str, path: str, request_id: str | None) -> None:
    """5xx: error with traceback; 4xx: one info line. Both name the request id."""
    extra = {"request_id": request_id or "-", "status": err.status_code, "code": err.code}
    if err.status_code >= 500:
        logger.error(
            "%s %s -> %s %s: %s",
            method,
            path,
            err.status_code,
            err.code,
            err.message,
            exc_info=err,
            extra=extra,
        )
    else:
        logger.info(
            "%s %s -> %s %s: %s", method, path, err.status_code, err.code, err.message, extra=extra
        )


def _request_id(request: Request) -> str | None:
    return request_id_from_scope(request.scope)


async def app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    request_id = _request_id(request)
    log_error(exc, request.method, request.url.path, request_id)
    return error_response(exc, request_id)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err = _from_http_exception(exc)
    request_id = _request_id(request)
    log_error(err, request.method, request.url.path, request_id)
    return error_response(err, request_id)


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the traceback, answer a generic 500 that reveals nothing."""
    request_id = _request_id(request)
    logger.error(
        "%s %s -> unhandled %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
        extra={"request_id": request_id or "-"},
    )
    return error_response(InternalServerError(), request_id)


async def send_error(scope: Scope, receive: Receive, send: Send, err: AppError) -> None:
    """Answer with ``err``'s envelope from pure ASGI middleware (outside Starlette's handlers)."""
    request_id = request_id_from_scope(scope)
    log_error(err, scope.get("method", ""), scope.get("path", ""), request_id)
    await error_response(err, request_id)(scope, receive, send)


exception_handlers: dict[Any, ExceptionHandler] = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    Exception: unhandled_exception_handler,
}


def install_error_handlers(app: Starlette) -> None:
    """Register the three handlers on ``app`` (before its first request)."""
    for key, handler in exception_handlers.items():
        app.add_exception_handler(key, handler)
