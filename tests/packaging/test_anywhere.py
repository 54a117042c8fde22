"""With the service installed, ``luser`` runs from any folder: outside a project it uses
the config and migrations shipped inside the ``app`` package."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.files import CONFIG_DIR, MIGRATIONS_DIR

from .isolation import run

LUSER = str(Path(sys.executable).with_name("luser"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_service_files_ship_inside_the_package() -> None:
    assert {"default.toml", "development.toml", "production.toml", "test.toml"} <= {
        p.name for p in CONFIG_DIR.glob("*.toml")
    }
    assert len(list(MIGRATIONS_DIR.glob("*.sql"))) >= 10


def test_migrate_from_an_empty_folder_applies_the_packaged_migrations(
    tmp_path: Path, fresh_url: str
) -> None:
    env = {"LUSER__DATABASE__URL": fresh_url, "LUSER_ENV": "test"}
    up = run([LUSER, "migrate", "up"], cwd=tmp_path, env=env)
    versions = {p.name.split("_", 1)[0] for p in MIGRATIONS_DIR.glob("*.sql")}
    assert up.returncode == 0 and f"已应用 {len(versions)} 个迁移" in up.stdout, up.stderr
    status = run([LUSER, "migrate", "status"], cwd=tmp_path, env=env)
    assert f"applied: {len(versions)}, pending: 0" in status.stdout, status.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written into the folder it ran in


def test_serve_from_an_empty_folder_migrates_and_answers(tmp_path: Path, fresh_url: str) -> None:
    port = _free_port()
    serve = subprocess.Popen(
        [LUSER, "serve", "--port", str(port), "--env", "test"],
        cwd=tmp_path,
        env={**_clean_env(), "LUSER__DATABASE__URL": fresh_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _ready(f"http://127.0.0.1:{port}/ready"):
            assert serve.poll() is None, serve.communicate()[0]
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)  # polling a child process, not synchronising threads
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
        assert serve.returncode == 0, output
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LUSER")} | {"NO_COLOR": "1"}
