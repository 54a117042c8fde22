"""``luser db generate-models``: stdout, --out, --check drift detection, bad input."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Luser = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def migrated(project: Path, luser: Luser) -> Path:
    (project / "migrations" / "0001_people.sql").write_text(
        "CREATE TABLE people (id bigserial PRIMARY KEY, name text NOT NULL);\n"
        "CREATE TABLE pets (id bigserial PRIMARY KEY, owner_id bigint);\n"
    )
    result = luser("migrate", "up")
    assert result.returncode == 0, result.stderr
    return project


def test_stdout_and_table_filter(migrated: Path, luser: Luser) -> None:
    result = luser("db", "generate-models")
    assert result.returncode == 0, result.stderr
    assert 'class People(Model, table="people"):' in result.stdout
    assert "class Pets(" in result.stdout and "luser_schema_migrations" not in result.stdout
    result = luser("db", "generate-models", "--tables", "pets")
    assert "class People(" not in result.stdout and "--tables pets" in result.stdout


def test_check_passes_then_reports_drift_with_a_diff(migrated: Path, luser: Luser) -> None:
    out = migrated / "app" / "models.py"
    result = luser("db", "generate-models", "--out", "app/models.py")
    assert result.returncode == 0, result.stderr
    written = out.read_text()
    assert result.stdout.strip() == "已生成 app/models.py"
    result = luser("db", "generate-models", "--out", "app/models.py", "--check")
    assert result.returncode == 0, result.stderr
    (migrated / "migrations" / "0002_age.sql").write_text(
        "ALTER TABLE people ADD COLUMN age int;\n"
    )
    assert luser("migrate", "up").returncode == 0
    result = luser("db", "generate-models", "--out", "app/models.py", "--check")
    assert result.returncode == 1
    assert "+    age: int | None = None" in result.stdout
    assert result.stdout.startswith("--- app/models.py (文件)")
    assert result.stderr.strip().startswith("错误: app/models.py 与数据库结构不一致")
    assert out.read_text() == written  # --check never writes


def test_unknown_table_is_a_clear_error_and_writes_nothing(migrated: Path, luser: Luser) -> None:
    result = luser("db", "generate-models", "--tables", "people,nope", "--out", "m.py")
    assert result.returncode == 1
    assert result.stderr.strip() == "错误: schema public 中没有这些表: nope"
    assert not (migrated / "m.py").exists()


def test_check_needs_out(migrated: Path, luser: Luser) -> None:
    result = luser("db", "generate-models", "--check")
    assert result.returncode == 2 and "--out" in result.stderr


def test_unknown_data_source_is_one_line(migrated: Path, luser: Luser) -> None:
    result = luser("db", "generate-models", "--data-source", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("错误: 未配置的数据源: nope")
