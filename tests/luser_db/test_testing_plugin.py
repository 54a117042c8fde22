"""The pytest plugin run as a library user runs it: docs/orm.md's example, as written,
in a pytest child process; the session database is migrated, then dropped."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from luser_db.testing import database_name, server_url

ORM_DOC = Path(__file__).resolve().parents[2] / "docs" / "orm.md"
BLOCK = re.compile(r"^```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.M | re.S)


def test_database_name_comes_from_the_path_not_the_socket_query() -> None:
    url = "postgresql://postgres:@/luser_test_1_ab?host=/home/me/.luser/pgdata/sock"
    assert database_name(url) == "luser_test_1_ab"


def _tour_example() -> dict[str, str]:
    """The files of docs/orm.md's Tests section, by the path named on their first line."""
    section = ORM_DOC.read_text(encoding="utf-8").split("### 8. Tests", 1)[1]
    section = section.split("\n## ", 1)[0]
    files = {}
    for block in BLOCK.finditer(section):
        first = block["body"].partition("\n")[0]
        path = first.lstrip("#- ").strip()
        files[path] = block["body"]
    assert set(files) == {
        "pyproject.toml",
        "migrations/0001_people.up.sql",
        "tests/test_people.py",
    }, files.keys()
    return files


def _socket_url() -> str:
    """The test server in the embedded server's URL form: the server in the query, which
    holds slashes (the embedded socket folder; here an application_name)."""
    base = server_url()
    parts = urlsplit(base)
    if "host=" in parts.query:  # the embedded server itself
        return base
    login = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "postgres"
    query = f"host={parts.hostname}&port={parts.port or 5432}&application_name=luser/plugin"
    return f"postgresql://{login}@/postgres?{query}"


async def _databases_like(prefix: str) -> list[str]:
    conn = await asyncpg.connect(_socket_url())
    try:
        rows = await conn.fetch(
            "select datname from pg_database where starts_with(datname, $1)", prefix
        )
    finally:
        await conn.close()
    return [r["datname"] for r in rows]


def test_documented_example_runs_migrated_and_drops_its_database(tmp_path: Path) -> None:
    for path, text in _tour_example().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    seen = tmp_path / "database_url.txt"
    (tmp_path / "tests" / "conftest.py").write_text(
        "import pathlib, pytest\n"
        "@pytest.fixture(scope='session', autouse=True)\n"
        "def _record(database_url):\n"
        f"    pathlib.Path({str(seen)!r}).write_text(database_url)\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER_")}
    env["LUSER_TEST_DATABASE_URL"] = _socket_url()
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = child.communicate(timeout=300)
    assert child.returncode == 0, output
    assert "2 passed" in output, output
    name = urlsplit(seen.read_text()).path.lstrip("/")
    assert name.startswith(f"luser_test_{child.pid}_"), name
    assert asyncio.run(_databases_like(f"luser_test_{child.pid}_")) == []
