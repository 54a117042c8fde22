"""Accounts as a feature of the app: its operations and the refresh-token sweep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from app.accounts.routes import OPERATIONS
from app.features import FeaturePackage
from luser_common.tasks import every
from luser_db import Db

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["TOKEN_SWEEP_SECONDS", "feature", "sweep_refresh_tokens"]

TOKEN_SWEEP_SECONDS = 3600


async def sweep_refresh_tokens() -> int:
    """Delete refresh tokens that expired over a day ago (revocation needs no history)."""
    return await Db.execute(
        "delete from refresh_tokens where expires_at < now() - interval '1 day'"
    )


@contextlib.asynccontextmanager
async def token_sweep(services: Services) -> AsyncIterator[None]:
    task = asyncio.create_task(
        every(TOKEN_SWEEP_SECONDS, sweep_refresh_tokens, name="sweep-refresh-tokens")
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


feature = FeaturePackage("accounts", OPERATIONS, jobs=token_sweep)
