"""Reading request input safely: JSON bodies and query strings, with size and type checks.

Every failure is a 4xx AppError: 415 wrong content type, 413 too large, 400 malformed
JSON (also too deep or with an over-long number, see ``json_input``), 422 a value the
model rejects (``field`` names it, nested paths dotted).
"""

from __future__ import annotations

import functools
import types
from typing import Any, TypeVar, Union, get_args, get_origin, overload

import pydantic
from starlette.requests import Request

from ..errors import (
    AppError,
    BadRequest,
    DeserializationError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from .json_input import decode_json

__all__ = ["DEFAULT_BODY_LIMIT", "is_json_content_type", "parse_query", "read_body", "read_json"]

M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_BODY_LIMIT = 1024 * 1024  # 1 MiB: plenty for JSON APIs, uploads go straight to VOD.


def is_json_content_type(value: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    return media.startswith("application/") and media.endswith("+json")


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise BadRequest("Content-Length 无效")
    return int(raw)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"请求体过大, 最多 {limit} 字节", details={"limit": limit})


async def read_body(request: Request, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading it all first."""
    cached = getattr(request, "_body", None)
    if isinstance(cached, bytes):
        if len(cached) > limit:
            raise _too_large(limit)
        return cached
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked bodies or a lying Content-Length
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    # Starlette's own cache, so a later request.body()/json() still works after streaming.
    request._body = body
    return body


@overload
async def read_json(request: Request, model: None = None, *, limit: int = ...) -> Any: ...
@overload
async def read_json(request: Request, model: type[M], *, limit: int = ...) -> M: ...


async def read_json(
    request: Request, model: type[M] | None = None, *, limit: int = DEFAULT_BODY_LIMIT
) -> Any:
    """Decode a JSON body, validated into ``model`` when given."""
    if not is_json_content_type(request.headers.get("content-type")):
        raise UnsupportedMediaType("请求体必须是 JSON (Content-Type: application/json)")
    body = await read_body(request, limit)
    if not body.strip():
        raise DeserializationError("请求体不能为空")
    data = decode_json(body)
    if model is None:
        return data
    return _validate(model, data)


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise AppError.from_exception(exc) from exc


def parse_query(request: Request, model: type[M]) -> M:
    """Validate the query string into ``model``; list-typed fields collect repeated keys."""
    params = request.query_params
    data: dict[str, Any] = {}
    for key, is_sequence in _query_keys(model):
        if key in params:
            data[key] = params.getlist(key) if is_sequence else params[key]
    for key in params:
        data.setdefault(key, params[key])  # unknown keys: let the model's extra= policy decide
    return _validate(model, data)


@functools.lru_cache(maxsize=1024)
def _query_keys(model: type[pydantic.BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(query key, collects repeated keys?) per field; typing introspection is slow, and
    this runs on every request, so it is done once per model."""
    return tuple(
        (field.alias or name, _is_sequence(field.annotation))
        for name, field in model.model_fields.items()
    )


def _is_sequence(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation) if arg is not type(None))
    return origin in (list, set, tuple, frozenset) or annotation in (list, set, tuple, frozenset)
