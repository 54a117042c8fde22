"""HTTP glue for Starlette: the response envelope, exception handlers, safe input parsing."""

from .body import DEFAULT_BODY_LIMIT, is_json_content_type, parse_query, read_body, read_json
from .envelope import EnvelopeResponse, error_body, error_response, success
from .handlers import (
    app_error_handler,
    exception_handlers,
    http_exception_handler,
    install_error_handlers,
    log_error,
    send_error,
    unhandled_exception_handler,
)

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "EnvelopeResponse",
    "app_error_handler",
    "error_body",
    "error_response",
    "exception_handlers",
    "http_exception_handler",
    "install_error_handlers",
    "is_json_content_type",
    "log_error",
    "parse_query",
    "read_body",
    "read_json",
    "send_error",
    "success",
    "unhandled_exception_handler",
]
