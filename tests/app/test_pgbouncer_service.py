"""The service behind a real PgBouncer (transaction pooling), LISTEN on ``direct_url``.

In both ``database.pgbouncer`` modes: ``"transaction"`` through the oldest PgBouncer
found (Debian's 1.18), ``"transaction_prepared"`` through one >= 1.21 with
``max_prepared_statements = 100`` (scripts/build-pgbouncer's 1.24.1). Uses the runner
of tests/luser_db/pgbouncer.py; skips, saying so, where a binary is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app import create_app
from app.container import LoginLimiter
from app.settings import AppConfig

from .conftest import PASSWORD, Levels, detached_pool, unique_email

_spec = importlib.util.spec_from_file_location(
    "luser_pgbouncer_runner", Path(__file__).parents[1] / "luser_db" / "pgbouncer.py"
)
assert _spec is not None and _spec.loader is not None
runner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = runner  # its dataclasses resolve their annotations through it
_spec.loader.exec_module(runner)

MODES = [
    pytest.param(
        "transaction",
        runner.oldest(),
        "",
        marks=pytest.mark.skipif(
            runner.oldest() is None, reason=f"no pgbouncer binary found ({runner.BUILD_HINT})"
        ),
    ),
    pytest.param(
        "transaction_prepared",
        runner.with_prepared_statements(),
        "max_prepared_statements = 100\n",
        marks=pytest.mark.skipif(
            runner.with_prepared_statements() is None,
            reason=f"no pgbouncer >= 1.21 found ({runner.BUILD_HINT})",
        ),
    ),
]


@pytest.mark.parametrize(("mode", "binary", "extra"), MODES)
async def test_the_service_works_through_pgbouncer(
    app_config: AppConfig,
    levels: Levels,
    migrated_url: str,
    mode: str,
    binary: object,
    extra: str,
) -> None:
    with runner.run_pgbouncer(migrated_url, binary, extra=extra) as bouncer:
        database = app_config.database.model_copy(
            update={
                "url": SecretStr(bouncer.url_for(migrated_url)),
                "pgbouncer": mode,
                "direct_url": SecretStr(migrated_url),
            }
        )
        config = app_config.model_copy(update={"database": database})
        async with detached_pool(app_config):
            app = create_app(config, entitlements=levels, login_limiter=LoginLimiter(attempts=5))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                    r = await api.get("/ready")
                    assert r.status_code == 200 and r.json()["data"]["database"] == "ok", r.text
                    email = unique_email()
                    body = {"email": email, "password": PASSWORD}
                    r = await api.post("/api/auth/register", json=body)
                    assert r.status_code == 201, r.text
                    r = await api.post(
                        "/api/auth/login", json={"account": email, "password": PASSWORD}
                    )
                    assert r.status_code == 200, r.text
                    headers = {"Authorization": f"Bearer {r.json()['data']['access_token']}"}
                    r = await api.get("/api/users/me", headers=headers)
                    assert r.status_code == 200 and r.json()["data"]["email"] == email, r.text
                    r = await api.get("/api/videos")
                    assert r.status_code == 200, r.text
                # The open API's LISTEN sits on a real backend of direct_url (through
                # PgBouncer it would hear nothing and its pid would be PgBouncer's).
                listener = app.state.services.open_api.router._listener
                assert listener is not None and listener.connected
                direct = await asyncpg.connect(migrated_url)
                try:
                    query = "select query from pg_stat_activity where pid = $1"
                    assert "LISTEN" in (await direct.fetchval(query, listener.pid) or "")
                finally:
                    await direct.close()
