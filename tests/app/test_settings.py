"""The service owns its configuration: app.settings extends luser_config's generic
schema, registers it, and the libraries know nothing of the app's sections."""

from __future__ import annotations

import re
from pathlib import Path

import luser_config
from app.settings import AppConfig, app_schema
from luser_config import Settings
from luser_config._docs import docs_are_current

ROOT = Path(__file__).resolve().parents[2]
APP_WORDS = re.compile(r"\b(vod|tencent|aliyun|alipay|wechat|payments?|open_?api|jwt)\b", re.I)


def test_importing_app_settings_registers_the_service_schema() -> None:
    assert issubclass(AppConfig, Settings)
    assert luser_config.current_schema() is app_schema()
    assert issubclass(app_schema(), AppConfig)
    assert set(Settings.model_fields) < set(AppConfig.model_fields)


def test_docs_config_md_is_up_to_date_for_the_service_schema() -> None:
    docs = ROOT / "docs" / "config.md"
    assert docs_are_current(docs, app_schema()), "run `luser config docs` to regenerate it"


def test_the_config_library_does_not_know_the_app_sections() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "luser_config").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if APP_WORDS.search(line)
    ]
    assert found == []
