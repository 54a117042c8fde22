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
from .json_input import MAX_JSON_DEPTH, MAX_NUMBER_LENGTH, decode_json

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_LENGTH",
    "EnvelopeResponse",
    "app_error_handler",
    "decode_json",
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
