"""The JSON envelope every luser response uses, success or error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from .._json import render_json
from ..context import REQUEST_ID_HEADER, current_request_id
from ..errors import AppError, SerializationError
from ..utils.time import iso_z

__all__ = ["EnvelopeResponse", "error_body", "error_response", "success"]

# Statuses that must not carry a body (RFC 9110 §15.3.5, §15.4.5).
_NO_BODY = frozenset({204, 304})


class EnvelopeResponse(JSONResponse):
    """JSONResponse that also renders datetime, Decimal, UUID, Enum, pydantic models, Page."""

    def render(self, content: Any) -> bytes:
        try:
            return render_json(content)
        except (TypeError, ValueError) as exc:
            raise SerializationError() from exc


def success(
    data: Any = None, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"success": true, "data": ..., "timestamp": ...}`` (no body for 204/304)."""
    if status_code in _NO_BODY:
        return Response(status_code=status_code, headers=headers)
    body = {"success": True, "data": data, "timestamp": iso_z()}
    return EnvelopeResponse(body, status_code=status_code, headers=headers)


def error_body(err: AppError, request_id: str | None = None) -> dict[str, Any]:
    return {"success": False, "error": err.to_dict(request_id), "timestamp": iso_z()}


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
