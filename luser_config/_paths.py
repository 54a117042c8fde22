"""Dotted key paths and what the schema says about them (type, secrecy)."""

from __future__ import annotations

import fnmatch
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr

from ._registry import current_schema

__all__ = [
    "UNKNOWN",
    "annotation_at",
    "canonical_segments",
    "flatten",
    "get_path",
    "is_sensitive",
    "join",
    "set_path",
    "split",
]

UNKNOWN: Any = object()
# Names that smell secret even when the schema does not know the key (extensions, extras).
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|private_key|api_key|apikey|credential)")


def split(path: str) -> list[str]:
    return [p for p in path.split(".") if p != ""]


def join(parts: Iterable[object]) -> str:
    return ".".join(str(p) for p in parts)


def _unwrap(ann: Any) -> list[Any]:
    """The non-None members of an Optional/Union annotation."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(ann) if a is not type(None)]
    return [ann]


def _step(ann: Any, segment: str) -> Any:
    for member in _unwrap(ann):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(segment)
            if field is not None:
                return field.annotation
        origin = typing.get_origin(member)
        if origin in (dict, Mapping) or origin is typing.Mapping:
            args = typing.get_args(member)
            return args[1] if len(args) == 2 else UNKNOWN
        if member is dict:
            return UNKNOWN
    return UNKNOWN


def annotation_at(path: Sequence[str], root: type[BaseModel] | None = None) -> Any:
    """The annotation at ``path`` in ``root`` (default: the registered schema), or UNKNOWN
    for keys the schema does not know."""
    ann: Any = current_schema() if root is None else root
    for segment in path:
        ann = _step(ann, segment)
        if ann is UNKNOWN or ann is Any:
            return UNKNOWN
    return ann


def is_secret_annotation(ann: Any) -> bool:
    return any(m is SecretStr for m in _unwrap(ann))


def is_sensitive(
    path: str, patterns: Sequence[str] = (), root: type[BaseModel] | None = None
) -> bool:
    """Whether the value at ``path`` must never be shown: SecretStr in the schema
    (default: the registered one), listed in ``encryption.sensitive_keys``, or a
    secret-looking unknown key."""
    root = current_schema() if root is None else root
    parts = split(path)
    for i in range(1, len(parts) + 1):
        if is_secret_annotation(annotation_at(parts[:i], root)):
            return True
    if any(fnmatch.fnmatchcase(path, p) for p in patterns):
        return True
    return annotation_at(parts, root) is UNKNOWN and bool(_SECRET_NAME.search(path.lower()))


def canonical_segments(segments: Sequence[str], root: type[BaseModel] | None = None) -> list[str]:
    """Map case-insensitive segments (from env var names) onto field names of ``root``
    (default: the registered schema); segments the schema does not know are lower-cased."""
    out: list[str] = []
    ann: Any = current_schema() if root is None else root
    for seg in segments:
        name = seg.lower()
        if ann is not UNKNOWN:
            for member in _unwrap(ann):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    match = next((f for f in member.model_fields if f.lower() == name), None)
                    name = match or name
            ann = _step(ann, name)
        out.append(name)
    return out


def get_path(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = data
    for seg in path:
        if not isinstance(node, Mapping) or seg not in node:
            return UNKNOWN
        node = node[seg]
    return node


def set_path(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = data
    for seg in path[:-1]:
        child = node.get(seg)
        if not isinstance(child, dict):
            child = node[seg] = {}
        node = child
    node[path[-1]] = value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path; lists are leaves, empty tables are kept as leaves."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out
