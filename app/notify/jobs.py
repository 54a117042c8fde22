"""Running the outbox inside the service: deliver due notifications, note expiries.

:func:`install` chains a periodic job after the app's own lifespan, every
``notifications.drain_interval_seconds`` (0 turns it off). The sender is ``sender``,
else ``app.state.notification_sender`` when set before startup, else
:class:`~app.notify.sender.LoggingSender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette

from app.notify.outbox import DrainReport, Outbox
from app.notify.sender import LoggingSender, NotificationSender
from luser_common import AppError
from luser_common.tasks import every
from luser_config.schema import NotificationsConfig

__all__ = ["build_outbox", "install", "run_once"]

logger = logging.getLogger("luser.notify")


def build_outbox(config: NotificationsConfig, sender: NotificationSender | None = None) -> Outbox:
    return Outbox(
        sender or LoggingSender(),
        max_attempts=config.max_attempts,
        retry_seconds=config.retry_seconds,
    )


async def run_once(outbox: Outbox) -> DrainReport | None:
    """Note new expiries, then deliver what is due; a database hiccup waits for the next pass."""
    try:
        await outbox.note_expiries()
        return await outbox.drain_once()
    except AppError as exc:
        logger.warning("notification pass failed: %s", exc)
        return None


def install(app: Starlette, sender: NotificationSender | None = None) -> None:
    inner: Callable[[Any], Any] = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            config: NotificationsConfig = app.state.config.notifications
            outbox = build_outbox(config, sender or getattr(app.state, "notification_sender", None))
            app.state.outbox = outbox
            task = None
            if config.drain_interval_seconds > 0:
                task = asyncio.create_task(
                    every(
                        config.drain_interval_seconds,
                        lambda: run_once(outbox),
                        name="notifications",
                    )
                )
            try:
                yield state
            finally:
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan
