"""Decoding untrusted JSON with limits: nesting depth, number length, finite numbers.

``json.loads`` recurses once per nesting level (thousands of ``[`` raise
RecursionError), hands 5,000-digit integers to ``int()`` (ValueError past
Python's 4,300-digit guard, quadratic time below it) and accepts ``NaN`` and
``Infinity``, which are not JSON. Each of those surfaced as a 500; here each is a
400 ``DESERIALIZATION_ERROR`` before any model or handler sees the value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import AppError, DeserializationError

__all__ = ["MAX_JSON_DEPTH", "MAX_NUMBER_LENGTH", "decode_json"]

# Request bodies of a JSON API are a few levels deep; 32 leaves room for nested
# jsonb documents and stays far below anything that recurses (pydantic, encoders).
MAX_JSON_DEPTH = 32
# Characters of one number literal: a bigint has 19 digits, a money amount with
# many decimals fits too; anything longer is not a value any field accepts.
MAX_NUMBER_LENGTH = 64


def _too_long(literal: str) -> DeserializationError:
    return DeserializationError(
        f"数字过长: 最多 {MAX_NUMBER_LENGTH} 个字符",
        details={"limit": MAX_NUMBER_LENGTH, "length": len(literal)},
    )


def _integer(literal: str) -> int:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _too_long(literal)
    return int(literal)


def _real(literal: str) -> float:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _too_long(literal)
    value = float(literal)
    if not math.isfinite(value):  # 1e400 overflows to inf
        raise DeserializationError("数字超出范围", details={"value": literal})
    return value


def _constant(name: str) -> Any:
    raise DeserializationError(f"JSON 不支持 {name}, 数字必须是有限值")


_decoder = json.JSONDecoder(parse_int=_integer, parse_float=_real, parse_constant=_constant)


def _too_deep() -> DeserializationError:
    return DeserializationError(
        f"JSON 嵌套过深: 最多 {MAX_JSON_DEPTH} 层", details={"limit": MAX_JSON_DEPTH}
    )


def _check_depth(data: Any, limit: int) -> None:
    """Iterative (it must not recurse itself), visiting containers only."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            raise _too_deep()
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def decode_json(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value ``body`` encodes; any input it refuses is a 400 AppError, never a crash."""
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        data = _decoder.decode(text)
    except RecursionError:  # deeper than the interpreter's stack: surely too deep
        raise _too_deep() from None
    except AppError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AppError.from_exception(exc) from exc
    if isinstance(data, dict | list):
        _check_depth(data, max_depth)
    return data
