"""``luser serve --workers 2``: /metrics adds up both workers (Prometheus multiprocess
mode), whichever worker answers the scrape."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
from prometheus_client.multiprocess import MultiProcessCollector

from .conftest import LUSER
from .test_serve import REPO, _answers, _free_port, _wait_for

_REQUESTS = "open_api_requests_total"


def _counts_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Open API calls each worker counted, from its own file in the shared directory."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        samples = [
            s
            for m in MultiProcessCollector.merge([str(path)], accumulate=True)
            for s in m.samples
            if s.name == _REQUESTS
        ]
        counts[path.name] = sum(s.value for s in samples)
    return counts


def test_metrics_add_up_every_worker(project: Path, cli_env: dict[str, str]) -> None:
    port = _free_port()
    metrics_dir = project / "prom"
    env = {
        **cli_env,
        "LUSER__DATABASE__MIGRATIONS_DIR": str(REPO / "app" / "migrations"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    serve = subprocess.Popen(
        [LUSER, "serve", "--port", str(port), "--workers", "2"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(f"{base}/health"), 180, "the service")
        workers = psutil.Process(serve.pid).children(recursive=True)
        assert len([p for p in workers if "python" in p.name().lower()]) >= 2
        sent = 0
        deadline = time.monotonic() + 60
        # New connections until both workers have served calls (the kernel picks).
        while len([n for n in _counts_per_worker(metrics_dir).values() if n > 0]) < 2:
            assert time.monotonic() < deadline, _counts_per_worker(metrics_dir)
            r = httpx.get(f"{base}/open/v1/usage", headers={"Connection": "close"})
            assert r.status_code == 401, r.text
            sent += 1
        for _ in range(4):  # every scrape, whichever worker answers, sees all calls
            text = httpx.get(f"{base}/metrics", headers={"Connection": "close"}).text
            found = re.findall(rf"^{_REQUESTS}{{[^}}]*}} ([0-9.e+]+)$", text, re.M)
            assert sum(float(v) for v in found) == sent, text
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:  # the workers too: they hold the output pipe open
            for child in psutil.Process(serve.pid).children(recursive=True):
                child.kill()
            serve.kill()
            print(serve.communicate(timeout=30)[0])
    assert serve.returncode == 0, output
