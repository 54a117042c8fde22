"""JSON encoding for API payloads: datetimes as ISO-8601, Decimal as a string, enums by value."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

__all__ = ["json_default", "render_json"]


def json_default(value: Any) -> Any:
    """``default=`` hook for ``json.dumps``; raises TypeError for types it does not know."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            from .utils.time import iso_z

            return iso_z(value, timespec="auto")
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        # A string keeps every digit of a money amount; a float would not.
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models
        return model_dump(mode="json")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # Page, luser_db models and records
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def render_json(content: Any) -> bytes:
    return json.dumps(
        content, default=json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")
