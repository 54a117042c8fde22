"""Fixtures for luser_config: a clean environment and a temporary config folder."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import luser_config
from luser_config import _registry

from .example_settings import ExampleSettings

WriteFile = Callable[[str, str], Path]


@pytest.fixture(autouse=True)
def example_schema() -> Iterator[type[ExampleSettings]]:
    """These tests load into a small application schema (``ExampleSettings``), the way
    an application registers its own; whatever was registered before comes back after."""
    previous = _registry._factory  # the class or schema factory, as registered
    luser_config.use_schema(ExampleSettings)
    yield ExampleSettings
    luser_config.use_schema(previous)


@pytest.fixture(autouse=True)
def clean_config_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LUSER_* variable from the outside leaks in; the global config is reset."""
    for name in list(os.environ):
        if name.upper().startswith("LUSER__") or name in (
            "LUSER_ENV",
            "LUSER_CONFIG_DIR",
            "LUSER_ENCRYPTION_KEY",
            "LUSER_ENCRYPTION_KEY_FILE",
        ):
            monkeypatch.delenv(name)
    luser_config.reset_config()
    yield
    luser_config.reset_config()


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    return d


@pytest.fixture
def write(cfg_dir: Path) -> WriteFile:
    """``write("default.toml", "...")`` writes dedented text into the config folder."""

    def _write(name: str, text: str) -> Path:
        path = cfg_dir / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
