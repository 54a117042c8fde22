"""The one error family every luser package raises.

    AppError                      (500 INTERNAL_ERROR)  -- the one thing to catch
    ├── Unauthorized              401 UNAUTHORIZED
    │   ├── TokenExpired          401 TOKEN_EXPIRED
    │   └── InvalidToken          401 INVALID_TOKEN
    ├── Forbidden                 403 FORBIDDEN
    ├── NotFound                  404 NOT_FOUND
    ├── MethodNotAllowed          405 METHOD_NOT_ALLOWED
    ├── BadRequest                400 BAD_REQUEST
    │   ├── DeserializationError  400 DESERIALIZATION_ERROR
    │   ├── ValidationError       422 VALIDATION_ERROR
    │   ├── PayloadTooLarge       413 PAYLOAD_TOO_LARGE
    │   └── UnsupportedMediaType  415 UNSUPPORTED_MEDIA_TYPE
    ├── BusinessError             422 BUSINESS_ERROR
    ├── Conflict                  409 CONFLICT
    │   └── DuplicateError        409 DUPLICATE
    ├── LimitExceeded             429 LIMIT_EXCEEDED
    ├── InternalServerError       500 INTERNAL_ERROR
    │   ├── ConfigError           500 CONFIG_ERROR
    │   ├── EncryptionError       500 ENCRYPTION_ERROR
    │   ├── IoError               500 IO_ERROR
    │   └── SerializationError    500 SERIALIZATION_ERROR
    ├── DatabaseError             500 DATABASE_ERROR
    │   └── DatabaseUnavailable   503 DATABASE_UNAVAILABLE
    ├── ExternalServiceError      502 EXTERNAL_SERVICE_ERROR
    ├── NetworkError              503 NETWORK_ERROR
    └── TimeoutError              504 TIMEOUT

Every error carries a stable English ``code`` (what clients branch on), an HTTP
``status_code`` and a Chinese ``message`` for people. ``field`` names the input
at fault, ``details`` holds extra, safe-to-show context. Conversions from the
exceptions users meet (pydantic, json, int parsing, os, timeouts) live here as
``AppError.from_exception``; the original exception is always chained.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from ._validation_messages import validation_message

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
    "LimitExceeded",
    "MethodNotAllowed",
    "NetworkError",
    "NotFound",
    "PayloadTooLarge",
    "SerializationError",
    "TimeoutError",
    "TokenExpired",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
]


class AppError(Exception):
    """Base of every luser error. Catch this one."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "服务器内部错误"
    # Whether a caller may retry the same operation unchanged and expect success.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.field = field
        self.details = details
        self.headers = dict(headers) if headers else {}
        super().__init__(self.message)

    def __repr__(self) -> str:
        extra = f", field={self.field!r}" if self.field else ""
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}{extra})"

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The ``error`` object of the HTTP envelope; empty parts are left out."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if request_id:
            body["request_id"] = request_id
        if self.field:
            body["field"] = self.field
        if self.details not in (None, "", [], {}):
            body["details"] = self.details
        return body

    # -- convenience constructors -------------------------------------------------

    @staticmethod
    def not_found(resource: str, details: Any = None) -> NotFound:
        """``AppError.not_found("视频")`` -> NotFound("视频不存在")."""
        return NotFound(f"{resource}不存在", details=details)

    @staticmethod
    def field_validation(field: str, message: str) -> ValidationError:
        return ValidationError(message, field=field)

    @staticmethod
    def bad_request(message: str, field: str | None = None) -> BadRequest:
        return BadRequest(f"{BadRequest.default_message}: {message}", field=field)

    @staticmethod
    def unauthorized(message: str | None = None) -> Unauthorized:
        return Unauthorized(message)

    @staticmethod
    def forbidden(message: str | None = None) -> Forbidden:
        return Forbidden(message)

    @staticmethod
    def conflict(message: str, details: Any = None) -> Conflict:
        return Conflict(message, details=details)

    @staticmethod
    def duplicate(what: str, details: Any = None) -> DuplicateError:
        return DuplicateError(f"{what}已存在", details=details)

    @staticmethod
    def business(message: str, details: Any = None) -> BusinessError:
        return BusinessError(message, details=details)

    @staticmethod
    def limit_exceeded(message: str | None = None, retry_after: int | None = None) -> LimitExceeded:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return LimitExceeded(message, headers=headers)

    @staticmethod
    def internal(message: str | None = None) -> InternalServerError:
        return InternalServerError(message)

    @staticmethod
    def external(provider: str, provider_code: str, message: str = "") -> ExternalServiceError:
        text = f"{provider}服务调用失败: {provider_code}"
        if message:
            text = f"{text} ({message})"
        return ExternalServiceError(text, details={"provider": provider, "code": provider_code})

    @classmethod
    def from_exception(cls, exc: BaseException) -> AppError:
        """Convert an exception users commonly meet into the matching AppError.

        The result has ``__cause__`` set to ``exc``, exactly as ``raise ... from exc``
        would, so tracebacks keep the original.
        """
        converted = _convert(exc)
        converted.__cause__ = exc
        return converted


class Unauthorized(AppError):
    """The request carries no valid credentials."""

    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "未登录或登录已失效"


class TokenExpired(Unauthorized):
    """A token was valid once but its lifetime is over."""

    code = "TOKEN_EXPIRED"
    default_message = "令牌已过期"


class InvalidToken(Unauthorized):
    """A token is malformed, forged or revoked."""

    code = "INVALID_TOKEN"
    default_message = "令牌无效"


class Forbidden(AppError):
    """Authenticated, but not allowed to do this."""

    status_code = 403
    code = "FORBIDDEN"
    default_message = "没有权限执行此操作"


class NotFound(AppError):
    """The resource does not exist (or is hidden from this caller)."""

    status_code = 404
    code = "NOT_FOUND"
    default_message = "资源不存在"


class MethodNotAllowed(AppError):
    """The route exists but not for this HTTP method; ``headers`` carries ``Allow``."""

    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "不支持该请求方法"


class BadRequest(AppError):
    """The request is malformed."""

    status_code = 400
    code = "BAD_REQUEST"
    default_message = "请求参数错误"


class DeserializationError(BadRequest):
    """Input could not be decoded (bad JSON, bad number, ...)."""

    code = "DESERIALIZATION_ERROR"
    default_message = "数据解析失败"


class ValidationError(BadRequest):
    """Input was well-formed but a value breaks a rule; ``field`` names it."""

    status_code = 422
    code = "VALIDATION_ERROR"
    default_message = "参数校验失败"


class PayloadTooLarge(BadRequest):
    """The request body is larger than the endpoint accepts."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "请求体过大"


class UnsupportedMediaType(BadRequest):
    """The request body has a content type the endpoint does not accept."""

    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "不支持的内容类型"


class BusinessError(AppError):
    """A domain rule refuses the operation (e.g. plan inactive)."""

    status_code = 422
    code = "BUSINESS_ERROR"
    default_message = "业务规则不允许此操作"


class Conflict(AppError):
    """The operation conflicts with the current state; may be retryable."""

    status_code = 409
    code = "CONFLICT"
    default_message = "操作冲突"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, field=field, details=details, headers=headers)
        self.retryable = retryable  # type: ignore[misc]  # per-instance override


class DuplicateError(Conflict):
    """A unique value is already taken."""

    code = "DUPLICATE"
    default_message = "数据已存在"


class LimitExceeded(AppError):
    """A rate limit, quota or balance would be exceeded."""

    status_code = 429
    code = "LIMIT_EXCEEDED"
    default_message = "超出限制"


class InternalServerError(AppError):
    """A bug or an unexpected state on our side."""


class ConfigError(InternalServerError):
    """Configuration is missing or invalid."""

    code = "CONFIG_ERROR"
    default_message = "配置错误"


class EncryptionError(InternalServerError):
    """Encrypting or decrypting failed (wrong key, tampered value)."""

    code = "ENCRYPTION_ERROR"
    default_message = "加解密失败"


class IoError(InternalServerError):
    """A file or OS operation failed."""

    code = "IO_ERROR"
    default_message = "读写失败"


class SerializationError(InternalServerError):
    """Our own data could not be encoded."""

    code = "SERIALIZATION_ERROR"
    default_message = "数据序列化失败"


class DatabaseError(AppError):
    """The database refused or failed an operation."""

    code = "DATABASE_ERROR"
    default_message = "数据库错误"


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or the pool is exhausted; retry later."""

    status_code = 503
    code = "DATABASE_UNAVAILABLE"
    default_message = "数据库暂不可用"
    retryable = True


class ExternalServiceError(AppError):
    """An upstream provider (VOD, payment) failed or refused."""

    status_code = 502
    code = "EXTERNAL_SERVICE_ERROR"
    default_message = "外部服务调用失败"


class NetworkError(AppError):
    """A network peer could not be reached."""

    status_code = 503
    code = "NETWORK_ERROR"
    default_message = "网络错误"
    retryable = True


class TimeoutError(AppError):  # the contract's name; shadows the builtin only here
    """An operation took longer than allowed."""

    status_code = 504
    code = "TIMEOUT"
    default_message = "操作超时"
    retryable = True


# -- conversions ------------------------------------------------------------------


def _pydantic_field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query"))


def _validation_error(exc: Any) -> ValidationError:
    """A pydantic ValidationError as ours: every message in Chinese, chosen by error type."""
    # include_input=False: the offending value may be a secret.
    errors = exc.errors(include_input=False, include_url=False)
    details = [
        {
            "field": _pydantic_field(tuple(e["loc"])),
            "message": validation_message(e),
            "type": e["type"],
        }
        for e in errors
    ]
    first = details[0] if details else {"field": "", "message": "参数校验失败"}
    field = first["field"] or None
    return ValidationError(
        f"参数校验失败: {field or '请求'} {first['message']}", field=field, details=details
    )


def _convert(exc: BaseException) -> AppError:
    if isinstance(exc, AppError):
        return exc
    try:
        import pydantic
    except ImportError:  # pragma: no cover - pydantic is a dependency
        pydantic = None  # type: ignore[assignment]
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return _validation_error(exc)
    if isinstance(exc, json.JSONDecodeError):
        return DeserializationError(
            f"JSON 解析失败: 第 {exc.lineno} 行第 {exc.colno} 列",
            details={"line": exc.lineno, "column": exc.colno},
        )
    if isinstance(exc, KeyError):
        # os.environ["X"] -> KeyError('X'): the usual shape of a missing variable.
        return ConfigError(f"缺少必需的配置项或环境变量: {exc.args[0] if exc.args else ''}")
    if isinstance(exc, (builtins.TimeoutError, asyncio.TimeoutError)):
        return TimeoutError()
    if isinstance(exc, (ConnectionError,)):
        return NetworkError()
    if isinstance(exc, FileNotFoundError):
        return IoError(f"文件不存在: {exc.filename}" if exc.filename else "文件不存在")
    if isinstance(exc, PermissionError):
        return IoError(f"没有文件访问权限: {exc.filename}" if exc.filename else "没有文件访问权限")
    if isinstance(exc, OSError):
        return IoError()
    if isinstance(exc, UnicodeDecodeError):
        return DeserializationError("文本编码错误, 需要 UTF-8")
    if isinstance(exc, ValueError):
        return DeserializationError(f"{DeserializationError.default_message}: {exc}")
    return InternalServerError()


def parse_int(value: str, field: str | None = None) -> int:
    """``int(value)`` that fails as a ValidationError naming ``field``."""
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field or '值'} 必须是整数", field=field) from exc


def parse_float(value: str, field: str | None = None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field or '值'} 必须是数字", field=field) from exc


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_bool(value: str | bool, field: str | None = None) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(f"{field or '值'} 必须是布尔值 (true/false)", field=field)


def require_env(name: str) -> str:
    """Read a required environment variable, or raise ConfigError naming it."""
    import os

    try:
        return os.environ[name]
    except KeyError as exc:
        raise ConfigError(f"缺少必需的环境变量: {name}", field=name) from exc
