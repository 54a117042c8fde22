"""Environment variables ``LUSER__SECTION__KEY=value``, typed from the schema."""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .._paths import UNKNOWN, _unwrap, annotation_at, canonical_segments, flatten, set_path
from .._registry import current_schema
from .base import Layer, Source

__all__ = ["PREFIX", "read_env"]

PREFIX = "LUSER__"


def _structured(ann: Any) -> bool:
    for member in _unwrap(ann):
        origin = typing.get_origin(member) or member
        if origin in (list, dict, tuple) or (
            isinstance(origin, type) and issubclass(origin, BaseModel)
        ):
            return True
    return False


def _is_list(ann: Any) -> bool:
    return any((typing.get_origin(m) or m) in (list, tuple) for m in _unwrap(ann))


def _optional(ann: Any) -> bool:
    return type(None) in typing.get_args(ann)


def _typed(raw: str, ann: Any) -> Any:
    """JSON for tables and lists (a plain list may also be comma separated); ``""`` is
    None for optional non-text keys; everything else stays a string that pydantic coerces."""
    if ann is UNKNOWN:
        return raw
    if _structured(ann):
        text = raw.strip()
        if _is_list(ann) and not text.startswith("["):
            return [part.strip() for part in text.split(",") if part.strip()]
        return json.loads(text)
    if raw == "" and _optional(ann) and str not in _unwrap(ann):
        return None
    return raw


def read_env(
    environ: Mapping[str, str] | None = None, schema: type[BaseModel] | None = None
) -> tuple[Layer, list[tuple[str, str, str]]]:
    """The env layer, plus (key, variable, message) for variables that could not be typed.
    Names and types come from ``schema`` (default: the registered one), so an
    application's sections (``LUSER__MAILER__API_KEY``) map exactly like built-in ones."""
    environ = os.environ if environ is None else environ
    schema = current_schema() if schema is None else schema
    layer = Layer("env")
    bad: list[tuple[str, str, str]] = []
    for name in sorted(environ):
        if not name.upper().startswith(PREFIX):
            continue
        segments = [s for s in name[len(PREFIX) :].split("__") if s]
        if not segments:
            continue
        path = canonical_segments(segments, schema)
        dotted = ".".join(path)
        try:
            value = _typed(environ[name], annotation_at(path, schema))
        except json.JSONDecodeError:
            bad.append((dotted, name, "需要 JSON 格式的值 (表或数组)"))
            continue
        set_path(layer.data, path, value)
        layer.provenance[dotted] = Source("env", name)
        if isinstance(value, dict):
            for sub in flatten(value, dotted):
                layer.provenance[sub] = Source("env", name)
    return layer, bad
