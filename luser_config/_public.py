"""Secrets whose value anyone can read: schema defaults and the shipped example files.

Production must not run with them: a public signing key lets anyone mint tokens, a
public pepper lets stored hashes be tested offline. Works on any schema, an
application's sections included.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, SecretStr

from ._crypto import is_encrypted
from ._loader import PathLike, resolve_dir
from ._paths import flatten

__all__ = ["PUBLIC_CONFIG_FILES", "public_secrets", "secret_values"]

# Committed next to the code, so every value in them is public; production.toml is
# left out because it may carry the deployment's own (encrypted) values.
PUBLIC_CONFIG_FILES = ("default.toml", "development.toml", "test.toml")


def secret_values(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str, str | None]]:
    """(dotted key, value, schema default) of every ``SecretStr`` in ``model``."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, SecretStr):
            default = field.default
            public = default.get_secret_value() if isinstance(default, SecretStr) else None
            yield key, value.get_secret_value(), public
        elif isinstance(value, BaseModel):
            yield from secret_values(value, f"{key}.")
        elif isinstance(value, dict):
            for sub, item in value.items():
                if isinstance(item, BaseModel):
                    yield from secret_values(item, f"{key}.{sub}.")


def _published(config_dir: PathLike | None) -> dict[str, set[str]]:
    folder, _ = resolve_dir(config_dir)
    found: dict[str, set[str]] = {}
    for name in PUBLIC_CONFIG_FILES:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue  # the loader reports broken files; here they publish nothing
        for key, value in flatten(data).items():
            if isinstance(value, str) and value and not is_encrypted(value):
                found.setdefault(key, set()).add(value)
    return found


def public_secrets(model: BaseModel, config_dir: PathLike | None = None) -> list[str]:
    """Dotted keys of the secrets in ``model`` set to a publicly known, non-empty value:
    the schema default or a value written in one of the shipped config files."""
    published = _published(config_dir)
    return [
        key
        for key, value, default in secret_values(model)
        if value and (value == default or value in published.get(key, ()))
    ]
