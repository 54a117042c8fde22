"""The key reference in docs/config.md, generated from the schema (never typed by hand).

``luser config docs`` rewrites the block between the markers; a test checks it is current.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._paths import _unwrap, is_secret_annotation
from ._registry import current_schema

__all__ = ["BEGIN", "END", "KeyDoc", "iter_keys", "render_keys", "update_docs"]

BEGIN = "<!-- BEGIN GENERATED KEYS (luser config docs) -->"
END = "<!-- END GENERATED KEYS -->"


@dataclass(frozen=True)
class KeyDoc:
    key: str
    type: str
    default: str
    range: str
    secret: bool
    description: str


def _type_name(ann: Any) -> str:
    members = _unwrap(ann)
    names = []
    for m in members:
        if m is SecretStr:
            names.append("secret str")
        elif typing.get_origin(m) is not None:
            args = ", ".join(_type_name(a) for a in typing.get_args(m))
            names.append(f"{typing.get_origin(m).__name__}[{args}]")
        else:
            names.append(getattr(m, "__name__", str(m)))
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        ann
    ):
        names.append("none")
    return " or ".join(names)


def _default(field: FieldInfo, secret: bool) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
        if secret and value:
            return "(development value)"
    if value is None:
        return "unset"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _range(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{symbol} {bound}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"`{pattern}`")
    return ", ".join(parts)


def _model_of(ann: Any) -> type[BaseModel] | None:
    for m in _unwrap(ann):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _dict_model(ann: Any) -> type[BaseModel] | None:
    for m in _unwrap(ann):
        if typing.get_origin(m) is dict:
            return _model_of(typing.get_args(m)[1])
    return None


def iter_keys(model: type[BaseModel] | None = None, prefix: str = "") -> Iterator[KeyDoc]:
    """Every leaf key of ``model`` (default: the registered schema) in definition order;
    dicts of sections as ``<name>``."""
    model = current_schema() if model is None else model
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is not None:
            yield from iter_keys(sub, key + ".")
            if sub.model_config.get("extra") == "allow" and prefix == "" and name != "extensions":
                kind, default, about = getattr(
                    sub, "extra_key_doc", ("bool", "`false`", "any other flag")
                )
                yield KeyDoc(f"{key}.<name>", kind, default, "", False, about)
            continue
        entry = _dict_model(field.annotation)
        if entry is not None:
            yield from iter_keys(entry, f"{key}.<name>.")
            continue
        secret = is_secret_annotation(field.annotation)
        yield KeyDoc(
            key,
            _type_name(field.annotation),
            _default(field, secret),
            _range(field),
            secret,
            field.description or "",
        )


def render_keys(schema: type[BaseModel] | None = None) -> str:
    """Markdown tables, one per top-level section of ``schema`` (default: the registered one)."""
    schema = current_schema() if schema is None else schema
    out: list[str] = []
    section = None
    for doc in iter_keys(schema):
        top = doc.key.split(".", 1)[0]
        if top != section:
            section = top
            out += [
                "",
                f"### `{top}`{_origin(schema, top)}",
                "",
                "| key | type | default | range | description |",
                "|---|---|---|---|---|",
            ]
        desc = doc.description.replace("|", "\\|")
        if doc.secret:
            desc = f"**secret** (may be `ENC(...)`). {desc}".strip()
        rng = doc.range.replace("|", "\\|")
        out.append(f"| `{doc.key}` | {doc.type} | {doc.default} | {rng} | {desc} |")
    return "\n".join(out).strip() + "\n"


def _origin(schema: type[BaseModel], name: str) -> str:
    """`` (from app.settings)`` for a section an application's schema added; ''
    for the generic ones."""
    for cls in reversed(schema.__mro__):
        if name in vars(cls).get("__annotations__", {}):
            module = cls.__module__
            return "" if module.split(".")[0] == "luser_config" else f" (from `{module}`)"
    return ""


def update_docs(path: Path, schema: type[BaseModel] | None = None) -> bool:
    """Rewrite the generated block of ``path``; returns whether the file changed."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    fresh = text[:start] + "\n\n" + render_keys(schema) + "\n" + text[end:]
    if fresh == text:
        return False
    path.write_text(fresh, encoding="utf-8")
    return True


def docs_are_current(path: Path, schema: type[BaseModel] | None = None) -> bool:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end] == "\n\n" + render_keys(schema) + "\n"
