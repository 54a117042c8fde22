"""A library-only install: the README's ORM snippet and the ``luser`` library commands run
with every service package unimportable; the service commands name the extra to install."""

from __future__ import annotations

import re
from pathlib import Path

from .isolation import NOT_IN_BASE, REPO, run, without

FIRST_PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.M | re.S)

# Runs a file's code the way the docs are run: top-level await, luser_db on ``url``.
SNIPPET_RUNNER = """
import ast, asyncio, sys, types
import luser_db

async def main(path, url):
    luser_db.init(url)
    module = types.ModuleType("__readme__")
    sys.modules[module.__name__] = module
    code = compile(open(path).read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    try:
        result = eval(code, module.__dict__)
        if result is not None:
            await result
    finally:
        await luser_db.close()
    print("snippet ok")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
LUSER = "from app.cli import main; main()"
SERVICE_HINT = "pip install 'luser[service]'"


def test_readme_orm_snippet_runs_without_the_service(tmp_path: Path, fresh_url: str) -> None:
    match = FIRST_PYTHON_BLOCK.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert match is not None and "Model" in match["code"]
    snippet = tmp_path / "readme_snippet.py"
    snippet.write_text(match["code"], encoding="utf-8")
    argv = [*without(NOT_IN_BASE, SNIPPET_RUNNER), str(snippet), fresh_url]
    result = run(argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "snippet ok" in result.stdout


def _project(tmp_path: Path) -> Path:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_people.sql").write_text(
        "-- migrate:up\ncreate table people (id bigserial primary key, name text not null);\n"
        "-- migrate:down\ndrop table people;\n",
        encoding="utf-8",
    )
    return tmp_path


def test_library_commands_work_and_service_commands_name_the_extra(
    tmp_path: Path, fresh_url: str
) -> None:
    project = _project(tmp_path)
    env = {"LUSER__DATABASE__URL": fresh_url, "LUSER_ENV": "test"}

    def luser(*args: str) -> tuple[int, str, str]:
        result = run([*without(NOT_IN_BASE, LUSER), *args], cwd=project, env=env)
        return result.returncode, result.stdout, result.stderr

    code, out, err = luser("migrate", "up")
    assert code == 0 and "已应用 1 个迁移" in out, err
    code, out, err = luser("db", "generate-models", "--tables", "people")
    assert code == 0 and "class People(Model" in out, err
    code, out, err = luser("--help")
    assert code == 0 and "serve" in out and "payments" in out, err
    service_commands = (
        ["serve"],
        ["payments", "reconcile"],
        ["user", "create-admin", "a@b.cn", "--password", "Adm1n-pass-x"],
    )
    for command in service_commands:
        code, out, err = luser(*command)
        assert code == 1, (command, out, err)
        assert SERVICE_HINT in err and "Traceback" not in err, (command, err)


def test_outside_a_project_a_library_install_keeps_the_library_defaults(
    tmp_path: Path, fresh_url: str
) -> None:
    # The service's packaged migrations are used outside a project only when the service is
    # installed: a library user's `luser migrate up` never applies them by accident.
    env = {"LUSER__DATABASE__URL": fresh_url, "LUSER_ENV": "test"}
    result = run([*without(NOT_IN_BASE, LUSER), "migrate", "status"], cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout
    assert "迁移目录不存在: migrations" in result.stderr, result.stderr


HOT_RELOAD = """
import asyncio, sys
from luser_common import ConfigError
from luser_config import ConfigBuilder

async def main(folder):
    try:
        await ConfigBuilder().env("test").config_dir(folder).with_hot_reload(True).build()
    except ConfigError as exc:
        print(exc.message)

asyncio.run(main(sys.argv[1]))
"""


def test_hot_reload_without_watchfiles_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text("[server]\nport = 8000\n", encoding="utf-8")
    result = run([*without(["watchfiles"], HOT_RELOAD), str(tmp_path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pip install 'luser[watch]'" in result.stdout, result.stdout


def test_without_a_url_or_the_embedded_extra_migrate_names_both(tmp_path: Path) -> None:
    project = _project(tmp_path)
    result = run([*without(NOT_IN_BASE, LUSER), "migrate", "up"], cwd=project)
    assert result.returncode == 1, result.stdout
    assert "请设置 database.url, 或安装 pip install 'luser[embedded]'" in result.stderr
    assert not (project / ".luser").exists()
