"""Connection budgeting: what the service's workers may open against what the server allows.

Each worker process holds up to ``database.max_connections`` pooled connections, one
dedicated LISTEN connection and, now and then, one for the partition job. All of
them together must fit in PostgreSQL's ``max_connections`` minus the slots it keeps
for superusers and ``RESERVE`` more for psql, migrations and backups. Behind
PgBouncer (``database.pgbouncer``) the pooled ones go to PgBouncer, whose own
``default_pool_size`` bounds them; only the dedicated ones reach the server.
``luser serve`` checks this once at start and logs a WARNING when it does not fit
(docs/deployment.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import luser_db

__all__ = ["RESERVE", "Budget", "check_connection_budget", "connection_budget"]

log = logging.getLogger("luser.budget")

RESERVE = 3  # connections left for psql, migrations and luser db backup
DEDICATED_PER_WORKER = 2  # LISTEN + the partition job's direct connection


@dataclass(frozen=True, slots=True)
class Budget:
    needed: int
    available: int

    @property
    def exceeded(self) -> bool:
        return self.needed > self.available


async def connection_budget(workers: int, pool_max: int, *, pgbouncer: bool) -> Budget:
    """What ``workers`` processes may open against what the primary server allows."""
    async with luser_db.direct_connection() as conn:
        limit = int(await conn.fetchval("SHOW max_connections"))
        reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
    per_worker = DEDICATED_PER_WORKER + (0 if pgbouncer else pool_max)
    return Budget(needed=workers * per_worker, available=limit - reserved - RESERVE)


async def check_connection_budget(workers: int, pool_max: int, *, pgbouncer: bool) -> Budget:
    """``connection_budget``, logging a WARNING when it is exceeded."""
    budget = await connection_budget(workers, pool_max, pgbouncer=pgbouncer)
    if budget.exceeded:
        log.warning(
            "connection budget exceeded: %d workers x (%s%d dedicated) = %d connections,"
            " the server allows %d (max_connections - superuser_reserved_connections - %d);"
            " lower --workers or database.max_connections, or raise the server's limit",
            workers,
            "" if pgbouncer else f"{pool_max} pooled + ",
            DEDICATED_PER_WORKER,
            budget.needed,
            budget.available,
            RESERVE,
        )
    return budget
