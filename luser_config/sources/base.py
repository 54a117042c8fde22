"""A source produces a Layer: nested data plus where every key came from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Layer", "Source", "merge_layers"]


@dataclass(frozen=True)
class Source:
    """Where a value came from: ``kind`` is file / env / db / set / default."""

    kind: str
    name: str
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.name} 第 {self.line} 行" if self.line else self.name
        if self.kind == "env":
            return f"环境变量 {self.name}"
        if self.kind == "db":
            return f"数据库 {self.name}"
        if self.kind == "set":
            return "运行时 set()"
        return "默认值 (schema)"

    def short(self) -> str:
        """Compact form for tables: ``default.toml:3``, ``env:LUSER__X``, ``db:app_config``."""
        if self.kind == "file":
            base = self.name.rsplit("/", 1)[-1]
            return f"{base}:{self.line}" if self.line else base
        if self.kind in ("env", "db"):
            return f"{self.kind}:{self.name}"
        return self.kind


DEFAULT_SOURCE = Source("default", "schema")


@dataclass
class Layer:
    """One source's data; ``provenance`` maps every dotted path (tables too) to a Source."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Source] = field(default_factory=dict)

    def source_of(self, path: str) -> Source | None:
        """The source of ``path`` or of its nearest recorded ancestor."""
        parts = path.split(".")
        for i in range(len(parts), 0, -1):
            found = self.provenance.get(".".join(parts[:i]))
            if found is not None:
                return found
        return None


def _merge_into(
    target: dict[str, Any],
    incoming: Mapping[str, Any],
    prov: dict[str, Source],
    layer: Layer,
    prefix: str,
) -> None:
    for key, value in incoming.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge_into(current, value, prov, layer, path)
        else:
            # A replaced table takes its children's provenance with it.
            for stale in [p for p in prov if p.startswith(path + ".")]:
                del prov[stale]
            target[key] = _copy(value)
            for sub, src in layer.provenance.items():
                if sub == path or sub.startswith(path + "."):
                    prov[sub] = src
        source = layer.source_of(path)
        if source is not None:
            prov[path] = source


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge_layers(layers: Iterable[Layer]) -> Layer:
    """Deep-merge tables, later layers win; lists and scalars replace whole."""
    merged = Layer("merged")
    for layer in layers:
        _merge_into(merged.data, layer.data, merged.provenance, layer, "")
    return merged
