"""How a notification leaves the service: anything with ``async def send(message)``.

The default writes it to the ``luser.notify`` log; an SMS, e-mail or push sender
implements the same protocol and is passed to ``app.notify.jobs.install``. A sender
raises to report a failed delivery (the message is retried with backoff); it gets
``message.id`` as an idempotency key for its own provider, since a crash between a
successful send and the bookkeeping makes the outbox try once more.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.notify.outbox import Notification

__all__ = ["LoggingSender", "NotificationSender"]

logger = logging.getLogger("luser.notify")


class NotificationSender(Protocol):
    async def send(self, message: Notification) -> None: ...


class LoggingSender:
    """Logs each notification at INFO: the default until a real channel is configured."""

    async def send(self, message: Notification) -> None:
        logger.info(
            "notify user %s [%s #%s, attempt %s]: %s - %s",
            message.user_id,
            message.kind,
            message.id,
            message.attempt,
            message.title,
            message.body,
        )
