"""The JSON envelope every luser response uses, success or error."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from .._json import json_default
from ..context import REQUEST_ID_HEADER, current_request_id
from ..errors import AppError, SerializationError

__all__ = ["EnvelopeResponse", "error_body", "error_response", "success"]

# Statuses that must not carry a body (RFC 9110 §15.3.5, §15.4.5).
_NO_BODY = frozenset({204, 304})


def _default(value: Any) -> Any:
    # Same output as json_default, with a shortcut for the common case: database rows
    # carry UTC datetimes (asyncpg's timestamptz), one default() call per value.
    if type(value) is datetime and value.tzinfo is UTC:
        return value.replace(tzinfo=None).isoformat() + "Z"
    return json_default(value)


# One encoder for every response: json.dumps would build a new one per call. Settings
# as luser_common._json.render_json (compact, UTF-8, no NaN).
_encode = json.JSONEncoder(
    default=_default, ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode


# (second, its ISO-8601 text): every response carries a timestamp to the second, so it
# is formatted once per second, not once per response (same text as utils.time.iso_z()).
_stamp: tuple[int, str] = (0, "")


def _timestamp() -> str:
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp[1]


class EnvelopeResponse(JSONResponse):
    """JSONResponse that also renders datetime, Decimal, UUID, Enum, pydantic models, Page."""

    def render(self, content: Any) -> bytes:
        try:
            return _encode(content).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SerializationError() from exc


def success(
    data: Any = None, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"success": true, "data": ..., "timestamp": ...}`` (no body for 204/304)."""
    if status_code in _NO_BODY:
        return Response(status_code=status_code, headers=headers)
    body = {"success": True, "data": data, "timestamp": _timestamp()}
    return EnvelopeResponse(body, status_code=status_code, headers=headers)


def error_body(err: AppError, request_id: str | None = None) -> dict[str, Any]:
    return {"success": False, "error": err.to_dict(request_id), "timestamp": _timestamp()}


def error_response(err: AppError, request_id: str | None = None) -> Response:
    """The error envelope with ``err``'s status and headers; request id from context if None."""
    request_id = request_id or current_request_id()
    headers = dict(err.headers)
    if request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)
    if err.status_code in _NO_BODY:
        return Response(status_code=err.status_code, headers=headers)
    try:
        return EnvelopeResponse(error_body(err, request_id), err.status_code, headers)
    except SerializationError:
        # Unencodable ``details`` must not turn an error report into a crash.
        err_copy = type(err)(err.message, field=err.field, headers=err.headers)
        return EnvelopeResponse(error_body(err_copy, request_id), err.status_code, headers)
