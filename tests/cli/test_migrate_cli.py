"""``luser migrate`` and ``luser db`` as a user runs them: exit codes, output, one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import pytest

from luser_db.migrations import Migrator

from .conftest import LUSER


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("错误: ")
    return lines[0]


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("select to_regclass('luser_schema_migrations')") is None:
            return []
        return [
            r[0] for r in await conn.fetch("select version from luser_schema_migrations order by 1")
        ]
    finally:
        await conn.close()


def _write(project: Path, name: str, sql: str) -> None:
    (project / "migrations" / name).write_text(sql, encoding="utf-8")


HELP_ARGS = [
    [],
    ["migrate"],
    ["db"],
    *[["migrate", c] for c in ("up", "down", "redo", "status", "new", "lint", "repair")],
    ["db", "shell"],
    ["db", "reset"],
    ["serve"],
]


def test_every_command_has_help() -> None:
    # In-process: each `luser` start-up imports the whole app, too slow to repeat 13 times.
    from click.testing import CliRunner

    from app.cli import main

    for args in HELP_ARGS:
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "--help" in result.output
        if len(args) == 2:
            assert "--env" in result.output, args


def test_help_as_a_subprocess(luser) -> None:
    result = luser("migrate", "up", "--help")
    assert result.returncode == 0 and "--dry-run" in result.stdout


async def test_new_up_status_down(luser, project: Path, fresh_url: str) -> None:
    result = luser("migrate", "new", "create things")
    assert result.returncode == 0, result.stderr
    up = project / "migrations" / "0001_create_things.up.sql"
    assert up.exists() and up.with_name("0001_create_things.down.sql").exists()
    up.write_text(up.read_text() + "create table things (id int);\n")
    up.with_name("0001_create_things.down.sql").write_text("drop table things;\n")
    _write(project, "0002_more.up.sql", "create table more (id int);")

    result = luser("migrate", "status")
    assert result.returncode == 0, result.stderr
    assert "0001_create_things" in result.stdout and "pending: 2" in result.stdout

    result = luser("migrate", "up", "--to", "1")
    assert result.returncode == 0, result.stderr
    assert await _versions(fresh_url) == [1]

    result = luser("migrate", "up")
    assert result.returncode == 0, result.stderr
    assert await _versions(fresh_url) == [1, 2]
    status = luser("migrate", "status")
    assert "applied: 2" in status.stdout and "pending: 0" in status.stdout

    result = luser("migrate", "down")
    assert result.returncode == 1  # 0002 has no down part
    assert "0002_more" in _one_line_error(result)


async def test_dry_run_prints_sql_and_changes_nothing(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_a.up.sql", "create table dry (id int);")
    result = luser("migrate", "up", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "create table dry (id int);" in result.stdout
    assert await _versions(fresh_url) == []


async def test_failure_is_one_line_and_exit_1(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_bad.up.sql", "create table ok (id int);\nselect * from nowhere;")
    result = luser("migrate", "up")
    assert result.returncode == 1
    assert "0001_bad.up.sql" in _one_line_error(result)
    assert await _versions(fresh_url) == []


async def test_changed_file_then_repair(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_a.up.sql", "create table a (id int);")
    assert luser("migrate", "up").returncode == 0
    _write(project, "0001_a.up.sql", "create table a (id int); -- edited")
    result = luser("migrate", "up")
    assert result.returncode == 1
    assert "0001_a.up.sql" in _one_line_error(result)
    assert "changed" in luser("migrate", "status").stdout
    assert luser("migrate", "repair").returncode == 0
    assert luser("migrate", "up").returncode == 0


def test_lint_exit_codes(luser, project: Path) -> None:
    _write(project, "0001_a.up.sql", "alter table users drop column age;")
    result = luser("migrate", "lint")
    assert result.returncode == 0
    assert "[drop-column]" in result.stdout
    result = luser("migrate", "lint", "--strict")
    assert result.returncode == 1
    _one_line_error(result)
    _write(
        project, "0001_a.up.sql", "-- lint:allow-destructive\nalter table users drop column age;"
    )
    assert luser("migrate", "lint", "--strict").returncode == 0


async def test_up_strict_refuses_unsafe(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_a.up.sql", "drop table if exists legacy;")
    result = luser("migrate", "up", "--strict")
    assert result.returncode == 1
    assert "drop-table" in _one_line_error(result)
    assert await _versions(fresh_url) == []


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["db", "reset", "--yes"], {"LUSER_ENV": "production"}),
        (["db", "reset", "--yes", "--env", "production"], {}),
        (["--env", "production", "db", "reset", "--yes"], {}),
    ],
)
async def test_db_reset_refuses_in_production(
    luser, project: Path, fresh_url: str, args, env
) -> None:
    _write(project, "0001_a.up.sql", "create table keep (id int);")
    await Migrator(
        fresh_url, directory=project / "migrations", lock_timeout=5, statement_timeout=0
    ).up()
    result = luser(*args, env=env)
    assert result.returncode == 1
    assert "生产环境" in _one_line_error(result)
    assert await _versions(fresh_url) == [1]


async def test_db_reset_asks_then_resets(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_a.up.sql", "create table keep (id int);")
    assert luser("migrate", "up").returncode == 0
    conn = await asyncpg.connect(fresh_url)
    await conn.execute("insert into keep values (1)")
    await conn.close()

    assert luser("db", "reset").returncode != 0  # no --yes and nobody to answer the prompt
    result = luser("db", "reset", "--yes")
    assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(fresh_url)
    try:
        assert await conn.fetchval("select count(*) from keep") == 0
    finally:
        await conn.close()


async def test_database_url_option_and_bad_connection(luser, project: Path, fresh_url: str) -> None:
    _write(project, "0001_a.up.sql", "create table a (id int);")
    result = luser("migrate", "up", "--database-url", fresh_url, env={"LUSER__DATABASE__URL": ""})
    assert result.returncode == 0, result.stderr
    result = luser("migrate", "status", "--database-url", "postgresql://u:pw@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "pw" not in _one_line_error(result)


async def test_two_processes_apply_each_migration_once(
    project: Path, cli_env, fresh_url: str
) -> None:
    _write(project, "0001_runs.up.sql", "create table runs (v int);")
    _write(project, "0002_slow.up.sql", "insert into runs values (2); select pg_sleep(0.5);")
    _write(project, "0003_last.up.sql", "insert into runs values (3);")
    procs = [
        subprocess.Popen(
            [LUSER, "migrate", "up"],
            cwd=project,
            env=cli_env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    conn = await asyncpg.connect(fresh_url)
    try:
        assert [r[0] for r in await conn.fetch("select v from runs order by v")] == [2, 3]
    finally:
        await conn.close()
    assert await _versions(fresh_url) == [1, 2, 3]


def test_db_shell_runs_psql(project: Path, cli_env) -> None:
    result = subprocess.run(
        [LUSER, "db", "shell"],
        cwd=project,
        env=cli_env,
        input="select 40 + 2 as answer;\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
