"""Running the outbox inside the service: deliver due notifications, note expiries.

:func:`running` runs a periodic job every ``notifications.drain_interval_seconds`` (0
turns it off); the notify feature (``app.notify.feature``) enters it with the services'
outbox, whose sender is ``create_app(notification_sender=...)``, else
:class:`~app.notify.sender.LoggingSender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from app.notify.outbox import DrainReport, Outbox
from app.notify.sender import LoggingSender, NotificationSender
from app.settings import NotificationsConfig
from luser_common import AppError
from luser_common.tasks import every

__all__ = ["build_outbox", "run_once", "running"]

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


@contextlib.asynccontextmanager
async def running(outbox: Outbox, config: NotificationsConfig) -> AsyncIterator[None]:
    """Deliver every ``config.drain_interval_seconds`` while inside (0: never)."""
    task = None
    if config.drain_interval_seconds > 0:
        task = asyncio.create_task(
            every(config.drain_interval_seconds, lambda: run_once(outbox), name="notifications")
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
