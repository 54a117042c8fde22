"""The ``luser_db.testing`` plugin loads without pytest-asyncio (pytest loads it for every
project in an environment where luser is installed); only its async fixtures then fail,
with the install hint, and only in the tests that ask for them."""

from __future__ import annotations

from pathlib import Path

from luser_db.testing import server_url

from .isolation import run, without

TESTS = """
def test_sync_fixture(database_url):
    assert database_url.startswith("postgresql")

def test_async_fixture(db_tx):
    pass

def test_no_fixture():
    pass
"""
PYTEST = (
    "import sys, pytest\n"
    "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'luser_db.testing', 'tests']))"
)


def test_plugin_degrades_without_pytest_asyncio(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_example.py").write_text(TESTS, encoding="utf-8")
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "LUSER_TEST_DATABASE_URL": server_url()}
    result = run(without(["pytest_asyncio"], PYTEST), cwd=tmp_path, env=env, timeout=300)
    assert "2 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "fixture 'db_tx' needs pytest-asyncio (pip install pytest-asyncio" in result.stdout
