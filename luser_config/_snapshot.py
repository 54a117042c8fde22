"""Merged raw data -> decrypted -> validated immutable Snapshot (or every problem at once)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from luser_common import EncryptionError

from ._crypto import KeyRing, is_encrypted
from ._paths import UNKNOWN, flatten, get_path, is_sensitive, join
from ._problems import Problem, raise_problems, safe_value
from .schema import Settings
from .sources.base import DEFAULT_SOURCE, Layer, Source

__all__ = ["Snapshot", "build_snapshot"]

_generation = itertools.count(1)


@dataclass(frozen=True)
class Snapshot:
    """One validated config plus where each key came from. Never mutated: reloads swap it."""

    config: Settings  # an instance of the schema it was loaded with
    provenance: Mapping[str, Source]
    raw: Mapping[str, Any] = field(repr=False)  # merged, still-encrypted data
    encrypted_keys: frozenset[str] = frozenset()
    generation: int = field(default_factory=lambda: next(_generation))

    def source_of(self, path: str) -> Source:
        """Who set ``path``; keys no source mentions come from the schema default."""
        parts = path.split(".")
        if path not in self.provenance and get_path(self.raw, parts) is UNKNOWN:
            return DEFAULT_SOURCE
        for i in range(len(parts), 0, -1):
            found = self.provenance.get(".".join(parts[:i]))
            if found is not None:
                return found
        return DEFAULT_SOURCE

    def is_sensitive(self, path: str) -> bool:
        patterns = self.config.encryption.sensitive_keys
        return path in self.encrypted_keys or is_sensitive(path, patterns, type(self.config))


def _translate(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    simple = {
        "missing": "缺少必填项",
        "extra_forbidden": "未知的配置项 (拼写错误?)",
        "int_parsing": "必须是整数",
        "int_type": "必须是整数",
        "int_from_float": "必须是整数",
        "float_parsing": "必须是数字",
        "float_type": "必须是数字",
        "bool_parsing": "必须是布尔值 (true/false)",
        "bool_type": "必须是布尔值 (true/false)",
        "string_type": "必须是字符串",
        "model_type": "必须是表 (table)",
        "dict_type": "必须是表 (table)",
        "list_type": "必须是数组",
    }
    if kind in simple:
        return simple[kind]
    ranges = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in ranges:
        op, key = ranges[kind]
        return f"超出范围, 必须 {op} {ctx.get(key)}"
    if kind == "string_pattern_mismatch":
        return f"格式不符, 应匹配 {ctx.get('pattern')}"
    return str(err.get("msg", kind))


def _decrypt(
    node: Any,
    path: list[str],
    ring: KeyRing | None,
    merged: Layer,
    problems: list[Problem],
    done: set[str],
) -> Any:
    if isinstance(node, dict):
        return {k: _decrypt(v, [*path, k], ring, merged, problems, done) for k, v in node.items()}
    if isinstance(node, list):
        # List items share the list's key as AAD.
        return [_decrypt(v, path, ring, merged, problems, done) for v in node]
    if not is_encrypted(node):
        return node
    key = join(path)
    done.add(key)
    if ring is None:
        problems.append(
            Problem(
                key,
                "是加密值, 但没有配置密钥 (LUSER_ENCRYPTION_KEY 或密钥文件)",
                merged.source_of(key),
            )
        )
        return node
    try:
        return ring.decrypt(node, key)
    except EncryptionError as exc:
        problems.append(Problem(key, exc.message.split(": ", 1)[-1], merged.source_of(key)))
        return node


def _plaintext_secrets(merged: Layer, patterns: list[str], schema: type[Settings]) -> list[Problem]:
    out = []
    for key, value in flatten(merged.data).items():
        source = merged.source_of(key)
        if (
            isinstance(value, str)
            and value
            and not is_encrypted(value)
            and source is not None
            and source.kind == "file"
            and is_sensitive(key, patterns, schema)
        ):
            message = "敏感配置必须以 ENC(...) 加密保存 (encryption.require_encrypted)"
            out.append(Problem(key, message, source, "******"))
    return out


def _validation_problems(
    exc: ValidationError,
    merged: Layer,
    patterns: list[str],
    encrypted: set[str],
    schema: type[Settings],
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Union members add their own loc parts; report the deepest key that exists.
        while err["type"] != "missing" and len(loc) > 1 and get_path(merged.data, loc) is UNKNOWN:
            loc.pop()
        key = join(loc)
        message = _translate(err)
        if (key, message) in seen:
            continue
        seen.add((key, message))
        raw = get_path(merged.data, loc)
        value = (
            None
            if raw is UNKNOWN
            else safe_value(
                raw,
                key in encrypted or is_sensitive(key, patterns, schema) or is_encrypted(raw),
            )
        )
        problems.append(Problem(key, message, merged.source_of(key), value))
    return problems


def build_snapshot(
    merged: Layer, env: str, ring: KeyRing | None, schema: type[Settings] = Settings
) -> Snapshot:
    """Decrypt every ENC(...) value, then validate against ``schema``; raise listing every
    problem found."""
    patterns = _patterns(merged.data)
    problems: list[Problem] = []
    encrypted: set[str] = set()
    data = _decrypt(merged.data, [], ring, merged, problems, encrypted)
    if problems:
        raise_problems("配置解密失败", problems, EncryptionError)
    data["env"] = env
    if get_path(merged.data, ["encryption", "require_encrypted"]) is True:
        problems += _plaintext_secrets(merged, patterns, schema)
    try:
        config = schema.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(exc, merged, patterns, encrypted, schema)
        config = None
    if problems or config is None:
        raise_problems("配置校验失败", problems)
    return Snapshot(config, dict(merged.provenance), merged.data, frozenset(encrypted))


def _patterns(data: Mapping[str, Any]) -> list[str]:
    value = get_path(data, ["encryption", "sensitive_keys"])
    return [str(v) for v in value] if isinstance(value, list) else []
