"""``luser serve`` warns at start when workers x pool cannot fit in the server's
max_connections (less its reserved slots)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import asyncpg

Luser = Callable[..., subprocess.CompletedProcess[str]]
WARNING = "connection budget exceeded"


async def test_serve_warns_when_the_workers_cannot_all_connect(
    luser: Luser, fresh_url: str
) -> None:
    conn = await asyncpg.connect(fresh_url)
    try:
        limit = int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()
    assert limit <= 100 + 2  # one worker with a 100-connection pool cannot fit
    # An unmigrated database: the service refuses to start (exit 3) right after the check.
    big = luser(
        "serve", "--no-migrate", "--workers", "1", "--port", "1",
        env={"LUSER__DATABASE__MAX_CONNECTIONS": "100"},
    )  # fmt: skip
    assert big.returncode == 3, big.stderr
    assert WARNING in big.stderr and "1 workers x (100 pooled + 2 dedicated)" in big.stderr
    small = luser("serve", "--no-migrate", "--workers", "1", "--port", "1")
    assert small.returncode == 3, small.stderr
    assert WARNING not in small.stderr
    # Behind PgBouncer the pooled connections go to PgBouncer: only 2 reach the server.
    behind = {
        "LUSER__DATABASE__MAX_CONNECTIONS": "100",
        "LUSER__DATABASE__PGBOUNCER": "transaction",
    }
    bouncer = luser("serve", "--no-migrate", "--workers", "1", "--port", "1", env=behind)
    assert bouncer.returncode == 3, bouncer.stderr
    assert WARNING not in bouncer.stderr
