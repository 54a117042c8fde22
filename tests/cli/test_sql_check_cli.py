"""``luser db sql check``: every rendering of every template PREPAREd on the migrated database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Luser = Callable[..., subprocess.CompletedProcess[str]]

MIGRATION = """\
CREATE TABLE people (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    age int NOT NULL DEFAULT 0
);
"""

GOOD = """\
-- name: adults
SELECT id, name FROM people WHERE age >= :min_age

-- name: search
-- check: sort=name
SELECT id FROM people WHERE true
{% if name %} AND name = :name {% endif %}
ORDER BY {{ sort }}
"""


@pytest.fixture
def migrated(project: Path, luser: Luser) -> Path:
    (project / "migrations" / "0001_people.sql").write_text(MIGRATION)
    result = luser("migrate", "up")
    assert result.returncode == 0, result.stderr
    (project / "sql").mkdir()
    return project


def test_check_passes_on_templates_that_match_the_schema(migrated: Path, luser: Luser) -> None:
    (migrated / "sql" / "people.sql").write_text(GOOD)
    result = luser("db", "sql", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    # adults: one rendering; search: name on / off.
    assert "已检查 2 个模板, 3 种渲染, 未发现问题" in result.stdout


def test_a_renamed_column_fails_with_file_and_line(migrated: Path, luser: Luser) -> None:
    path = migrated / "sql" / "people.sql"
    path.write_text(
        GOOD
        + "\n-- name: broken\n-- Renamed column.\nSELECT id\nFROM people\nWHERE nickname = :n\n"
        + "\n-- name: optional\nSELECT id FROM people WHERE true\n"
        + "{% if old %} AND years > :age {% endif %}\n"
    )
    result = luser("db", "sql", "check")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("sql/people.sql:14: people.broken: 42703")
    assert "nickname" in lines[0]
    # Only the rendering with the fragment switched on reads the missing column.
    assert lines[1].startswith("sql/people.sql:18: people.optional: 42703") and "years" in lines[1]
    assert result.stderr.strip() == "错误: SQL 模板检查发现 2 处问题"


def test_file_problems_and_missing_samples_are_reported(migrated: Path, luser: Luser) -> None:
    (migrated / "more").mkdir()
    (migrated / "sql" / "a.sql").write_text("-- name: x\nSELECT 1\n")
    (migrated / "more" / "a.sql").write_text(
        "-- name: x\nSELECT 2\n\n-- name: sorted\nSELECT id FROM people ORDER BY {{ sort }}\n"
    )
    result = luser("db", "sql", "check", "--dir", "sql", "--dir", "more")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines == [
        "more/a.sql:1: 模板名重复: a.x (已在 sql/a.sql:1 定义)",
        "more/a.sql:4: a.sorted: 无法渲染 (模板输出的标识符未提供);"
        " 请用文档注释给出示例值, 例如 -- check: sort=id",
    ]


def test_dir_option_and_a_missing_folder(migrated: Path, luser: Luser, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "q.sql").write_text("-- name: one\nSELECT name FROM people\n")
    result = luser("db", "sql", "check", "--dir", str(other))
    assert result.returncode == 0, result.stderr
    assert "已检查 1 个模板, 1 种渲染" in result.stdout
