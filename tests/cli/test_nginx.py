"""A real nginx, configured with the shipped deploy/nginx/luser-proxy.conf, in front of
``luser serve``: the client's address reaches the service (a forged X-Forwarded-For
does not), every request gets nginx's request id, oversized bodies stop at nginx."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import LUSER
from .test_serve import REPO, _answers, _free_port, _wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLIENT = "127.0.0.5"  # the test client's own source address, distinct from nginx's
FORGED = "203.0.113.9"

pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (.ci/run installs it)"
)


def _nginx_config(tmp: Path, listen: int, upstream: int) -> Path:
    temp = " ".join(f"{kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy"))
    temp += " ".join(f" {kind}_temp_path {tmp / kind};" for kind in ("fastcgi", "uwsgi", "scgi"))
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{}}
http {{
    access_log {tmp / "access.log"};
    {temp}
    upstream luser {{ server 127.0.0.1:{upstream}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{ include {REPO / "deploy" / "nginx" / "luser-proxy.conf"}; }}
    }}
}}
"""
    )
    return conf


def test_requests_through_nginx(project: Path, cli_env: dict[str, str]) -> None:
    port, front = _free_port(), _free_port()
    env = {**cli_env, "LUSER__DATABASE__MIGRATIONS_DIR": str(REPO / "app" / "migrations")}
    serve = subprocess.Popen(
        [LUSER, "serve", "--port", str(port), "--forwarded-allow-ips", "127.0.0.1"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    nginx = None
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), 180, "the service")
        conf = _nginx_config(project, front, port)
        nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(project)])
        base = f"http://127.0.0.1:{front}"
        _wait_for(lambda: _answers(f"{base}/health"), 30, "nginx")
        client = httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT))
        with client:
            r = client.get(
                f"{base}/health", headers={"X-Forwarded-For": FORGED, "X-Request-ID": "mine"}
            )
            assert r.status_code == 200, r.text
            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])  # nginx's id
            big = client.post(f"{base}/api/auth/login", content=b"x" * (3 * 1024 * 1024))
            assert big.status_code == 413  # stopped at nginx, never read by the service
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        if serve.poll() is None:
            serve.kill()
            print(serve.communicate(timeout=30)[0])
    health = [line for line in output.splitlines() if '"GET /health' in line]
    assert any(CLIENT in line for line in health), output  # X-Forwarded-For honoured
    assert FORGED not in output  # nginx overwrote the client's forged header
    assert "/api/auth/login" not in output
