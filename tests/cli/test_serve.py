"""``luser serve`` and the app's startup checks, run as a user runs them: real processes,
real signals, a real (embedded or server) PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from app import create_app
from app.config_checks import UNMIGRATED, production_problems
from app.settings import AppConfig
from luser_common import ConfigError

from .conftest import LUSER

REPO = Path(__file__).resolve().parents[2]
SAFE = {"jwt": {"secret": "j" * 40}, "open_api": {"token_pepper": "p" * 40}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling interval, not synchronisation: the deadline decides


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- production refuses public secrets and, unless allowed, the embedded database --------


def test_production_problems_name_every_public_secret_and_the_embedded_database() -> None:
    problems = " | ".join(production_problems(AppConfig(env="production")))
    assert "jwt.secret 使用了公开的默认值, 请设置 LUSER__JWT__SECRET" in problems
    assert "open_api.token_pepper 使用了公开的默认值" in problems
    assert "database.embedded_in_production = true" in problems


def test_production_refuses_values_published_in_the_shipped_config_files() -> None:
    # test.toml is committed: its JWT secret is as public as the schema default.
    published = {**SAFE, "jwt": {"secret": "test-jwt-secret-not-for-production"}}
    cfg = AppConfig.model_validate({"env": "production", **published})
    problems = production_problems(cfg)
    assert any(p.startswith("jwt.secret 使用了公开的默认值") for p in problems), problems


def test_production_refuses_empty_required_secrets() -> None:
    cfg = AppConfig.model_validate(
        {"env": "production", "jwt": {"secret": ""}, "open_api": {"token_pepper": ""}}
    )
    problems = production_problems(cfg)
    assert "jwt.secret 不能为空, 请设置 LUSER__JWT__SECRET" in problems
    assert "open_api.token_pepper 不能为空, 请设置 LUSER__OPEN_API__TOKEN_PEPPER" in problems


def test_production_accepts_own_secrets_and_an_explicitly_allowed_embedded_database() -> None:
    cfg = AppConfig.model_validate(
        {"env": "production", **SAFE, "database": {"embedded_in_production": True}}
    )
    assert production_problems(cfg) == []
    with_url = AppConfig.model_validate(
        {"env": "production", **SAFE, "database": {"url": "postgresql://u@db/x"}}
    )
    assert production_problems(with_url) == []
    assert production_problems(AppConfig(env="development")) == []


async def test_lifespan_refuses_production_with_public_secrets() -> None:
    app = create_app(AppConfig.model_validate({"env": "production", "database": {"url": "x"}}))
    with pytest.raises(ConfigError, match=r"生产环境拒绝启动: jwt\.secret"):
        async with app.router.lifespan_context(app):
            pass


def test_serve_refuses_production_defaults_before_starting_anything(
    luser: Callable[..., subprocess.CompletedProcess[str]], project: Path
) -> None:
    result = luser("serve", "--env", "production", "--port", str(_free_port()))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("错误: 生产环境拒绝启动: "), result.stderr
    assert "jwt.secret" in result.stderr and "open_api.token_pepper" in result.stderr
    assert "Traceback" not in result.stderr
    no_url = luser(
        "serve",
        "--env",
        "production",
        env={
            "LUSER__DATABASE__URL": "",
            "LUSER__JWT__SECRET": "j" * 40,
            "LUSER__OPEN_API__TOKEN_PEPPER": "p" * 40,
        },
    )
    assert no_url.returncode == 1, no_url.stderr
    assert "database.embedded_in_production" in no_url.stderr
    assert not (project / ".luser").exists()  # the embedded server was never started


# -- an unmigrated database: one clear line and a non-zero exit -----------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_that_fails_at_startup_exits_non_zero_with_the_reason(
    luser: Callable[..., subprocess.CompletedProcess[str]], workers: int
) -> None:
    result = luser("serve", "--no-migrate", "--workers", str(workers), "--port", str(_free_port()))
    assert result.returncode == 3, result.stderr
    assert f"启动失败: {UNMIGRATED}" in result.stderr
    assert "Traceback" not in result.stderr and "UndefinedTable" not in result.stderr


def test_serve_passes_server_log_level_to_uvicorn(
    luser: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    port = str(_free_port())
    chatty = luser("serve", "--no-migrate", "--port", port)
    quiet = luser(
        "serve", "--no-migrate", "--port", port, env={"LUSER__SERVER__LOG_LEVEL": "error"}
    )
    assert "INFO:" in chatty.stderr  # uvicorn's "Started server process"
    assert quiet.returncode == 3 and "INFO:" not in quiet.stderr, quiet.stderr
    assert f"启动失败: {UNMIGRATED}" in quiet.stderr


# -- SIGTERM stops the embedded PostgreSQL that serve started ------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_serve_and_the_embedded_postgres_it_started(
    tmp_path: Path, workers: int
) -> None:
    data_dir = tmp_path / "pgdata"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update(
        LUSER_ENV="test",
        LUSER__DATABASE__EMBEDDED_DATA_DIR=str(data_dir),
        LUSER__DATABASE__MIGRATIONS_DIR=str(REPO / "app" / "migrations"),
        NO_COLOR="1",
    )
    serve = subprocess.Popen(
        [LUSER, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), 180, "the service")
        postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
        assert postmaster.is_running()
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            print(serve.communicate()[0])  # shown by pytest when the test failed
    try:
        assert serve.returncode == 0, output
        _wait_for(lambda: not postmaster.is_running(), 30, "the embedded PostgreSQL to stop")
    finally:
        if postmaster.is_running():  # leave no orphan behind when the test fails
            postmaster.terminate()


# -- secrets in logged URLs -----------------------------------------------------------------


def test_access_log_masks_secret_query_parameters(project: Path, cli_env: dict[str, str]) -> None:
    port = _free_port()
    secret = "tc-callback-secret-4f1e"
    env = {
        **cli_env,
        "LUSER__DATABASE__MIGRATIONS_DIR": str(REPO / "app" / "migrations"),
        "LUSER__VOD__TENCENT__CALLBACK_TOKEN": secret,
    }
    serve = subprocess.Popen(
        # Only 10.1.2.3 may set X-Forwarded-For; uvicorn alone would trust 127.0.0.1.
        [LUSER, "serve", "--port", str(port), "--forwarded-allow-ips", "10.1.2.3"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(f"{base}/health"), 180, "the service")
        httpx.post(f"{base}/api/vod/callbacks/tencent?token={secret}&id=7", json={}, timeout=10)
        forged = {"X-Forwarded-For": "203.0.113.9"}
        httpx.get(f"{base}/health?sign=s1gn4ture&x-api-key=k3y&page=2", headers=forged)
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            print(serve.communicate()[0])
    assert "/api/vod/callbacks/tencent?token=***&id=7" in output, output
    assert "/health?sign=***&x-api-key=***&page=2" in output, output
    assert secret not in output and "s1gn4ture" not in output and "k3y" not in output
    assert "203.0.113.9" not in output  # --forwarded-allow-ips reached uvicorn
