"""A bounded schemathesis pass over /openapi.json against the running service: no 500s,
responses match the documented statuses and schemas.

The service runs under uvicorn on 127.0.0.1 in a thread with its own event loop, so
the process-wide pool is detached from the test loop for the duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.services import LoginLimiter
from luser_config.schema import AppConfig

from .conftest import Account, detached_pool


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread: no signals
        pass


@pytest.fixture(scope="module")
async def fuzz_pool(app_config: AppConfig, admin: Account) -> AsyncIterator[None]:
    # ``admin`` first: it needs the pool of the test loop, which is then handed over.
    async with detached_pool(app_config):
        yield


@pytest.fixture(scope="module")
def fuzz_base_url(app_config: AppConfig, fuzz_pool: None) -> Iterator[str]:
    app = create_app(app_config, login_limiter=LoginLimiter(attempts=10_000))
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz_operation(operation: Any, base_url: str, token: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        headers = dict(case.headers or {})
        if operation.path.startswith(("/api/users/me", "/api/admin/")) or "/play" in operation.path:
            headers.setdefault("Authorization", f"Bearer {token}")
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

    run()


def test_api_never_answers_500(fuzz_base_url: str, admin: Account) -> None:
    # The schemathesis pytest plugin does not load under pytest 9, so drive hypothesis here.
    schema = schemathesis.openapi.from_url(f"{fuzz_base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err raises: schema is ours
        try:
            _fuzz_operation(operation, fuzz_base_url, admin.access_token)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
