"""The AppError family: codes, statuses, messages, envelope shape and conversions."""

from __future__ import annotations

import builtins
import json
from datetime import datetime
from typing import Any, Literal

import pydantic
import pytest

import luser_common.errors as errors_module
from luser_common import errors
from luser_common._validation_messages import validation_message
from luser_common.errors import AppError, parse_bool, parse_int, require_env
from luser_common.http import error_body

EXPECTED = {
    "AppError": (500, "INTERNAL_ERROR"),
    "Unauthorized": (401, "UNAUTHORIZED"),
    "TokenExpired": (401, "TOKEN_EXPIRED"),
    "InvalidToken": (401, "INVALID_TOKEN"),
    "Forbidden": (403, "FORBIDDEN"),
    "NotFound": (404, "NOT_FOUND"),
    "MethodNotAllowed": (405, "METHOD_NOT_ALLOWED"),
    "BadRequest": (400, "BAD_REQUEST"),
    "DeserializationError": (400, "DESERIALIZATION_ERROR"),
    "ValidationError": (422, "VALIDATION_ERROR"),
    "PayloadTooLarge": (413, "PAYLOAD_TOO_LARGE"),
    "UnsupportedMediaType": (415, "UNSUPPORTED_MEDIA_TYPE"),
    "BusinessError": (422, "BUSINESS_ERROR"),
    "Conflict": (409, "CONFLICT"),
    "DuplicateError": (409, "DUPLICATE"),
    "LimitExceeded": (429, "LIMIT_EXCEEDED"),
    "InternalServerError": (500, "INTERNAL_ERROR"),
    "ConfigError": (500, "CONFIG_ERROR"),
    "EncryptionError": (500, "ENCRYPTION_ERROR"),
    "IoError": (500, "IO_ERROR"),
    "SerializationError": (500, "SERIALIZATION_ERROR"),
    "DatabaseError": (500, "DATABASE_ERROR"),
    "DatabaseUnavailable": (503, "DATABASE_UNAVAILABLE"),
    "ExternalServiceError": (502, "EXTERNAL_SERVICE_ERROR"),
    "NetworkError": (503, "NETWORK_ERROR"),
    "TimeoutError": (504, "TIMEOUT"),
}


def test_every_exported_error_is_covered() -> None:
    assert set(EXPECTED) == set(errors_module.__all__) | {"AppError"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_status_code_and_default_message(name: str) -> None:
    cls = getattr(errors, name)
    err = cls()
    assert issubclass(cls, AppError)
    assert (err.status_code, err.code) == EXPECTED[name]
    assert err.message == cls.default_message
    # Messages are for people in China: at least one CJK character, no English fallback.
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err.message)
    assert str(err) == err.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_envelope_shape(name: str) -> None:
    body = error_body(getattr(errors, name)(), "rid-1")
    assert body["success"] is False
    assert body["error"] == {
        "code": EXPECTED[name][1],
        "message": getattr(errors, name).default_message,
        "request_id": "rid-1",
    }
    assert body["timestamp"].endswith("Z")


def test_envelope_omits_empty_parts_and_keeps_field_and_details() -> None:
    assert errors.NotFound().to_dict() == {"code": "NOT_FOUND", "message": "资源不存在"}
    err = errors.ValidationError("手机号格式错误", field="phone", details=[{"x": 1}])
    assert err.to_dict("r") == {
        "code": "VALIDATION_ERROR",
        "message": "手机号格式错误",
        "request_id": "r",
        "field": "phone",
        "details": [{"x": 1}],
    }


def test_subtrees() -> None:
    assert issubclass(errors.TokenExpired, errors.Unauthorized)
    assert issubclass(errors.UnsupportedMediaType, errors.BadRequest)
    assert issubclass(errors.PayloadTooLarge, errors.BadRequest)
    assert issubclass(errors.DatabaseUnavailable, errors.DatabaseError)
    assert errors.DatabaseUnavailable.retryable and not errors.NotFound.retryable
    assert errors.Conflict(retryable=True).retryable


def test_convenience_constructors() -> None:
    assert AppError.not_found("视频").message == "视频不存在"
    assert AppError.duplicate("邮箱").message == "邮箱已存在"
    err = AppError.limit_exceeded(retry_after=30)
    assert err.headers == {"Retry-After": "30"}
    ext = AppError.external("alipay", "ACQ.TRADE_NOT_EXIST")
    assert ext.status_code == 502 and ext.details["code"] == "ACQ.TRADE_NOT_EXIST"


class Inner(pydantic.BaseModel):
    zip_code: int


class Outer(pydantic.BaseModel):
    items: list[Inner]


def _raise(exc: BaseException) -> AppError:
    try:
        raise exc
    except BaseException as caught:
        return AppError.from_exception(caught)


def test_from_pydantic_validation_error_names_nested_field() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Outer.model_validate({"items": [{"zip_code": 1}, {"zip_code": "x"}]})
    err = AppError.from_exception(info.value)
    assert isinstance(err, errors.ValidationError) and err.status_code == 422
    assert err.field == "items.1.zip_code"
    assert err.details[0]["field"] == "items.1.zip_code"
    assert err.__cause__ is info.value
    # include_input=False: the rejected value is not echoed back.
    assert "'x'" not in json.dumps(err.details)


class _Signup(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str = pydantic.Field(min_length=2, max_length=4, pattern=r"^[a-z]+$")
    age: int = pydantic.Field(ge=0, le=150)
    kind: Literal["a", "b"] = "a"
    tags: list[str] = pydantic.Field(default=[], max_length=1)
    born: datetime | None = None

    @pydantic.field_validator("tags")
    @classmethod
    def _no_x(cls, value: list[str]) -> list[str]:
        if "x" in value:
            raise ValueError("标签不能是 x")
        return value


def _messages(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(pydantic.ValidationError) as info:
        _Signup.model_validate(data)
    err = AppError.from_exception(info.value)
    assert isinstance(err, errors.ValidationError)
    return {d["field"]: d["message"] for d in err.details}


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, {"name": "必填", "age": "必填"}),
        ({"name": "a", "age": 1}, {"name": "长度至少为 2 个字符"}),
        ({"name": "abcde", "age": 1}, {"name": "长度不能超过 4 个字符"}),
        ({"name": "AB", "age": 1}, {"name": "格式不正确"}),
        ({"name": "ab", "age": "x"}, {"age": "必须是整数"}),
        ({"name": "ab", "age": 1.5}, {"age": "必须是整数, 不能带小数"}),
        ({"name": "ab", "age": -1}, {"age": "不能小于 0"}),
        ({"name": "ab", "age": 151}, {"age": "不能大于 150"}),
        ({"name": "ab", "age": 1, "kind": "c"}, {"kind": "必须是以下之一: 'a', 'b'"}),
        ({"name": "ab", "age": 1, "tags": ["p", "q"]}, {"tags": "最多 1 项"}),
        ({"name": "ab", "age": 1, "tags": ["x"]}, {"tags": "标签不能是 x"}),
        ({"name": "ab", "age": 1, "born": "soon"}, {"born": "必须是日期时间 (ISO 8601)"}),
        ({"name": "ab", "age": 1, "extra": 1}, {"extra": "是不允许的字段"}),
        ({"name": 5, "age": 1}, {"name": "必须是字符串"}),
    ],
)
def test_pydantic_messages_are_chinese_by_type(
    data: dict[str, Any], expected: dict[str, str]
) -> None:
    # "Field required", "String should match pattern '^[a-z]+$'" reached users before.
    messages = _messages(data)
    assert messages == expected
    for text in messages.values():
        assert _is_chinese(text) and "[a-z]" not in text and "Input should" not in text


def test_validation_error_message_names_field_and_reason() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        _Signup.model_validate({"age": 1})
    assert AppError.from_exception(info.value).message == "参数校验失败: name 必填"


def test_unknown_pydantic_error_type_falls_back_to_chinese() -> None:
    assert validation_message({"type": "some_future_type", "msg": "Something odd"}) == "取值无效"


def test_from_json_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads('{"a": ')
    err = AppError.from_exception(info.value)
    assert isinstance(err, errors.DeserializationError) and err.status_code == 400
    assert err.__cause__ is info.value


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("invalid literal"), errors.DeserializationError),
        (KeyError("LUSER_SECRET"), errors.ConfigError),
        (FileNotFoundError(2, "No such file", "/etc/x.toml"), errors.IoError),
        (PermissionError(13, "denied", "/root/x"), errors.IoError),
        (OSError("disk"), errors.IoError),
        (builtins.TimeoutError(), errors.TimeoutError),
        (ConnectionRefusedError(), errors.NetworkError),
        (RuntimeError("internal detail"), errors.InternalServerError),
    ],
)
def test_from_exception_conversions(exc: BaseException, expected: type[AppError]) -> None:
    err = _raise(exc)
    assert type(err) is expected
    assert err.__cause__ is exc


def test_from_exception_keeps_app_errors_and_names_missing_key() -> None:
    original = errors.Forbidden()
    assert AppError.from_exception(original) is original
    assert "LUSER_SECRET" in _raise(KeyError("LUSER_SECRET")).message
    assert "/etc/x.toml" in _raise(FileNotFoundError(2, "x", "/etc/x.toml")).message
    assert "internal detail" not in _raise(RuntimeError("internal detail")).message


def test_require_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUSER_NOPE", raising=False)
    with pytest.raises(errors.ConfigError) as info:
        require_env("LUSER_NOPE")
    assert info.value.field == "LUSER_NOPE"
    assert isinstance(info.value.__cause__, KeyError)
    monkeypatch.setenv("LUSER_NOPE", "v")
    assert require_env("LUSER_NOPE") == "v"


def test_parse_helpers() -> None:
    assert parse_int("42") == 42
    with pytest.raises(errors.ValidationError) as info:
        parse_int("4x2", field="page")
    assert info.value.field == "page" and isinstance(info.value.__cause__, ValueError)
    assert parse_bool("Yes") is True and parse_bool("off") is False
    with pytest.raises(errors.ValidationError):
        parse_bool("maybe")
