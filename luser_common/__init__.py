"""luser_common: errors, HTTP envelope, Page and utilities shared by every luser package."""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from .context import current_request_id
from .errors import (
    AppError,
    BadRequest,
    BusinessError,
    ConfigError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DeserializationError,
    DuplicateError,
    EncryptionError,
    ExternalServiceError,
    Forbidden,
    InternalServerError,
    InvalidToken,
    IoError,
    LimitExceeded,
    MethodNotAllowed,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    SerializationError,
    TimeoutError,
    TokenExpired,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from .page import Page
from .ratelimit import Rate, RedisTokenBucketLimiter, TokenBucketLimiter, make_limiter
from .utils import (
    configure_logging,
    constant_time_equals,
    format_shanghai,
    hmac_sha256,
    is_email,
    is_mainland_mobile,
    iso_z,
    mask_email,
    mask_phone,
    random_token,
    utc_now,
    validate_password_strength,
)

if _TYPE_CHECKING:
    from .http import (
        error_response,
        exception_handlers,
        install_error_handlers,
        parse_query,
        read_json,
        success,
    )
    from .jwt_codec import JwtCodec
    from .utils.passwords import hash_password, needs_rehash, verify_password

# Names whose modules need the service's packages (Starlette, PyJWT, argon2): imported on
# first use, so that ``import luser_common`` (and luser_db, luser_config) stays library-only.
_LAZY = {
    "error_response": "http",
    "exception_handlers": "http",
    "install_error_handlers": "http",
    "parse_query": "http",
    "read_json": "http",
    "success": "http",
    "JwtCodec": "jwt_codec",
    "hash_password": "utils.passwords",
    "needs_rehash": "utils.passwords",
    "verify_password": "utils.passwords",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "AppError",
    "BadRequest",
    "BusinessError",
    "ConfigError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DeserializationError",
    "DuplicateError",
    "EncryptionError",
    "ExternalServiceError",
    "Forbidden",
    "InternalServerError",
    "InvalidToken",
    "IoError",
    "JwtCodec",
    "LimitExceeded",
    "MethodNotAllowed",
    "NetworkError",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Rate",
    "RedisTokenBucketLimiter",
    "SerializationError",
    "TimeoutError",
    "TokenBucketLimiter",
    "TokenExpired",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "configure_logging",
    "constant_time_equals",
    "current_request_id",
    "error_response",
    "exception_handlers",
    "format_shanghai",
    "hash_password",
    "hmac_sha256",
    "install_error_handlers",
    "is_email",
    "is_mainland_mobile",
    "iso_z",
    "make_limiter",
    "mask_email",
    "mask_phone",
    "needs_rehash",
    "parse_query",
    "random_token",
    "read_json",
    "success",
    "utc_now",
    "validate_password_strength",
    "verify_password",
]
