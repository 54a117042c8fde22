"""Which files and keys to use, and the synchronous files + environment load."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from luser_common import ConfigError, EncryptionError

from ._crypto import KeyRing
from ._paths import get_path
from ._problems import Problem, raise_problems
from ._registry import SettingsT, current_schema
from ._snapshot import Snapshot, build_snapshot
from .schema import Settings
from .sources.base import Layer, Source, merge_layers
from .sources.env import read_env
from .sources.toml import TomlProblem, read_toml

__all__ = ["KNOWN_ENVS", "Loader", "load_config"]

ENV_VAR = "LUSER_ENV"
DIR_VAR = "LUSER_CONFIG_DIR"
KNOWN_ENVS = ("development", "production", "test")
_ENV_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

PathLike = str | os.PathLike[str]


def resolve_env(env: str | None) -> str:
    name = (env or os.environ.get(ENV_VAR) or "development").strip()
    if not _ENV_NAME.match(name):
        raise ConfigError(f"运行环境名称不合法: {name!r} (只允许字母、数字、_ 和 -)", field=ENV_VAR)
    return name


def resolve_dir(config_dir: PathLike | None) -> tuple[Path, bool]:
    """The config folder and whether someone named it explicitly (arg or LUSER_CONFIG_DIR)."""
    if config_dir is not None:
        return Path(config_dir), True
    from_env = os.environ.get(DIR_VAR, "").strip()
    if from_env:
        return Path(from_env), True
    return Path("config"), False


def _toml_problem(p: TomlProblem) -> Problem:
    where = Source("file", str(p.path), p.line)
    message = p.message if p.column is None else f"TOML 格式错误 (第 {p.column} 列): {p.message}"
    return Problem("", message, where)


@dataclass
class Loader:
    """Everything one load needs; reused by every reload of a manager."""

    env: str
    config_dir: Path
    explicit_dir: bool = False
    extra_files: list[Path] = field(default_factory=list)
    key_override: KeyRing | None = None
    # Fixed when the loader is made, so every reload validates against the same schema.
    schema: type[Settings] = Settings

    @classmethod
    def create(
        cls,
        env: str | None = None,
        config_dir: PathLike | None = None,
        files: Sequence[PathLike] = (),
        key: KeyRing | str | None = None,
        schema: type[Settings] | None = None,
    ) -> Loader:
        """``schema`` None means the registered one (``use_schema``)."""
        ring = KeyRing.parse(key, "encryption_key") if isinstance(key, str) else key
        directory, explicit = resolve_dir(config_dir)
        return cls(
            resolve_env(env),
            directory,
            explicit,
            [Path(f) for f in files],
            ring,
            current_schema() if schema is None else schema,
        )

    def file_paths(self) -> list[Path]:
        """Files in precedence order that exist (default.toml, {env}.toml, extra files)."""
        named = [self.config_dir / "default.toml", self.config_dir / f"{self.env}.toml"]
        return [p for p in named if p.is_file()] + self.extra_files

    def file_layers(self) -> list[Layer]:
        problems: list[Problem] = []
        if self.explicit_dir and not self.config_dir.is_dir():
            problems.append(
                Problem(
                    "", f"配置目录不存在: {self.config_dir}", Source("file", str(self.config_dir))
                )
            )
        env_file = self.config_dir / f"{self.env}.toml"
        if self.env not in KNOWN_ENVS and not env_file.is_file():
            problems.append(
                Problem(
                    "env",
                    f"未知的运行环境 {self.env!r}: 没有 {env_file} (内置环境: "
                    f"{', '.join(KNOWN_ENVS)})",
                    Source("env", ENV_VAR),
                )
            )
        layers: list[Layer] = []
        for path in self.file_paths():
            if not path.is_file():
                problems.append(Problem("", f"配置文件不存在: {path}", Source("file", str(path))))
                continue
            try:
                layers.append(read_toml(path))
            except TomlProblem as p:
                problems.append(_toml_problem(p))
        if problems:
            raise_problems("配置加载失败", problems)
        return layers

    def env_layer(self) -> Layer:
        layer, bad = read_env(schema=self.schema)
        if bad:
            raise_problems(
                "环境变量格式错误", [Problem(k, msg, Source("env", var)) for k, var, msg in bad]
            )
        return layer

    def keyring(self, merged: Layer) -> KeyRing | None:
        """Explicit key, else LUSER_ENCRYPTION_KEY(_FILE), else ``encryption.key_file``."""
        if self.key_override is not None:
            return self.key_override
        ring = KeyRing.from_env()
        if ring is not None:
            return ring
        key_file = get_path(merged.data, ["encryption", "key_file"])
        if isinstance(key_file, str) and key_file:
            path = Path(key_file)
            if not path.is_absolute():
                path = self.config_dir / path
            try:
                return KeyRing.from_file(path)
            except EncryptionError as exc:
                raise EncryptionError(
                    f"{exc.message} (encryption.key_file, 来自 "
                    f"{merged.source_of('encryption.key_file')})"
                ) from exc
        return None

    def assemble(self, files: list[Layer], *middle: Layer, top: Layer | None = None) -> Snapshot:
        """files -> middle layers (the database) -> environment -> ``top`` (runtime set)."""
        layers = [*files, *middle, self.env_layer()]
        if top is not None:
            layers.append(top)
        merged = merge_layers(layers)
        return build_snapshot(merged, self.env, self.keyring(merged), self.schema)

    def load(self) -> Snapshot:
        return self.assemble(self.file_layers())


@overload
def load_config(
    env: str | None = None,
    config_dir: PathLike | None = None,
    *,
    files: Sequence[PathLike] = (),
    encryption_key: KeyRing | str | None = None,
) -> Settings: ...


@overload
def load_config(
    env: str | None = None,
    config_dir: PathLike | None = None,
    *,
    files: Sequence[PathLike] = (),
    encryption_key: KeyRing | str | None = None,
    schema: type[SettingsT],
) -> SettingsT: ...


def load_config(
    env: str | None = None,
    config_dir: PathLike | None = None,
    *,
    files: Sequence[PathLike] = (),
    encryption_key: KeyRing | str | None = None,
    schema: type[Settings] | None = None,
) -> Settings:
    """Load files + environment variables synchronously (no database), decrypted and validated.

    The folder is ``config_dir``, else ``LUSER_CONFIG_DIR``, else ``./config``; a missing
    implicit ``./config`` means schema defaults + environment. The result is an instance
    of ``schema`` (default: the registered one, see ``use_schema``). Raises ConfigError /
    EncryptionError listing every problem.
    """
    return Loader.create(env, config_dir, files, encryption_key, schema).load().config
