"""The sandbox: offline, signature-checking stand-ins for every VOD and payment provider.

Tests use the stand-ins directly (``app.sandbox.vod``, ``app.sandbox.payments``). In
sandbox mode (``[sandbox] enabled``, on by default in development and with the
embedded database) the service starts one stand-in per registered provider inside its
own process, on 127.0.0.1, and runs against them: the lifespan enters
:func:`sandbox_mode`, which yields the config with every provider section aimed at
its stand-in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from app.settings import AppConfig

__all__ = ["sandbox_mode"]


@contextlib.asynccontextmanager
async def sandbox_mode(config: AppConfig) -> AsyncIterator[AppConfig]:
    """``config`` as given, or, when the sandbox is enabled, aimed at stand-ins that
    run until the block ends."""
    from app.config_checks import sandbox_enabled

    if not sandbox_enabled(config):
        yield config
        return
    from app.sandbox.runtime import Sandbox

    async with Sandbox(config) as sandboxed:
        yield sandboxed
