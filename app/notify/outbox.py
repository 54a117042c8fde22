"""The notification outbox (migration 0039).

Writers call :func:`enqueue` inside the transaction of the event itself, so a
notification exists exactly when its event committed; ``dedupe_key`` makes a
replayed event write nothing more.

:meth:`Outbox.drain_once` delivers due messages. Each is *claimed* in one short
transaction that counts the attempt and books it in ``notification_attempts``
(``FOR UPDATE SKIP LOCKED``: concurrent drainers never take the same message, and a
claim pushes ``next_attempt_at`` past a lease, so a drainer that died mid-send
leaves the message to be retried, not lost). The sender runs outside any
transaction; then one transaction records the attempt's outcome and settles the
message: ``sent``, retried after a doubling delay, or ``failed`` after
``max_attempts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.notify.messages import KINDS, render
from app.notify.sender import NotificationSender
from luser_common import utc_now
from luser_db import Db, Field, Model, in_transaction, transaction

__all__ = ["DrainReport", "Notification", "Outbox", "OutboxMessage", "enqueue"]

logger = logging.getLogger("luser.notify")

LEASE_SECONDS = 300
MAX_BACKOFF_SECONDS = 3600
BATCH = 100
# Expiries older than this when first noticed are history, not news (e.g. a first deploy).
EXPIRY_LOOKBACK = timedelta(days=3)


class OutboxMessage(Model, table="notification_outbox"):
    id: int = Field(primary_key=True)
    user_id: int = 0
    kind: str = ""
    dedupe_key: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Notification:
    """One delivery attempt of one message, as a sender sees it."""

    id: int
    user_id: int
    kind: str
    title: str
    body: str
    attempt: int
    payload: dict[str, Any] = field(default_factory=dict)


async def enqueue(user_id: int, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
    """Write a notification in the caller's transaction; False when ``dedupe_key`` was
    already written (the same event again)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not in_transaction():
        raise RuntimeError("enqueue() belongs in the transaction of the event it reports")
    written = await Db.query_value(
        "insert into notification_outbox (user_id, kind, dedupe_key, payload)"
        " values (?, ?, ?, ?) on conflict (dedupe_key) do nothing returning id",
        user_id,
        kind,
        dedupe_key,
        payload,
    )
    return written is not None


@dataclass(frozen=True)
class DrainReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


class Outbox:
    def __init__(
        self,
        sender: NotificationSender,
        *,
        max_attempts: int = 8,
        retry_seconds: float = 30,
    ) -> None:
        self.sender = sender
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds

    async def drain_once(self, now: datetime | None = None) -> DrainReport:
        """Attempt every due message once."""
        counts = {"sent": 0, "retrying": 0, "failed": 0}
        for message in await self._claim(now or utc_now()):
            counts[await self._deliver(message)] += 1
        return DrainReport(**counts)

    async def _claim(self, now: datetime) -> list[OutboxMessage]:
        async with transaction():
            claimed = await OutboxMessage.find(
                "update notification_outbox set attempts = attempts + 1, next_attempt_at = ?"
                " where id in (select id from notification_outbox where status = 'pending'"
                " and next_attempt_at <= ? order by next_attempt_at, id limit ?"
                " for update skip locked) returning *",
                now + timedelta(seconds=LEASE_SECONDS),
                now,
                BATCH,
            )
            if claimed:
                await Db.execute(
                    "insert into notification_attempts (outbox_id, attempt_no)"
                    " select id, attempts from notification_outbox where id = any(?)",
                    [m.id for m in claimed],
                )
        return sorted(claimed, key=lambda m: m.id)

    async def _deliver(self, message: OutboxMessage) -> str:
        title, body = render(message.kind, message.payload)
        note = Notification(
            message.id,
            message.user_id,
            message.kind,
            title,
            body,
            message.attempts,
            message.payload,
        )
        try:
            await self.sender.send(note)
        except Exception as exc:  # any sender failure is one failed attempt, retried
            return await self._failed(message, f"{type(exc).__name__}: {exc}"[:500])
        async with transaction():
            await self._finish_attempt(message, "sent", None)
            await Db.execute(
                "update notification_outbox set status = 'sent', sent_at = now(),"
                " last_error = null where id = ?",
                message.id,
            )
        return "sent"

    async def _failed(self, message: OutboxMessage, error: str) -> str:
        gave_up = message.attempts >= self.max_attempts
        delay = min(self.retry_seconds * 2 ** (message.attempts - 1), MAX_BACKOFF_SECONDS)
        async with transaction():
            await self._finish_attempt(message, "error", error)
            await Db.execute(
                "update notification_outbox set status = ?, last_error = ?, next_attempt_at = ?"
                " where id = ?",
                "failed" if gave_up else "pending",
                error,
                utc_now() + timedelta(seconds=delay),
                message.id,
            )
        logger.warning(
            "notification %s to user %s, attempt %s failed%s: %s",
            message.id,
            message.user_id,
            message.attempts,
            " (giving up)" if gave_up else "",
            error,
        )
        return "failed" if gave_up else "retrying"

    @staticmethod
    async def _finish_attempt(message: OutboxMessage, outcome: str, error: str | None) -> None:
        await Db.execute(
            "update notification_attempts set finished_at = now(), outcome = ?, error = ?"
            " where outbox_id = ? and attempt_no = ? and outcome is null",
            outcome,
            error,
            message.id,
            message.attempts,
        )

    async def note_expiries(self, now: datetime | None = None) -> int:
        """Write a ``subscription_expired`` message for every user whose access ended
        (the end of their last subscription period) since ``EXPIRY_LOOKBACK``.

        The statement is its own transaction: the expiry and its notification are one
        write, and the dedupe key (user and end time) writes each expiry once however
        many processes run this. A later renewal that ends again is a new expiry.
        """
        now = now or utc_now()
        return await Db.execute(
            "insert into notification_outbox (user_id, kind, dedupe_key, payload)"
            " select p.user_id, 'subscription_expired', 'subscription_expired:' || p.user_id"
            " || ':' || (extract(epoch from p.ends_at) * 1000)::bigint,"
            " jsonb_build_object('ended_at', p.ends_at, 'level', p.level)"
            " from subscription_periods p where p.ends_at <= ? and p.ends_at > ?"
            " and not exists (select 1 from subscription_periods q"
            "                 where q.user_id = p.user_id and q.ends_at > p.ends_at)"
            " on conflict (dedupe_key) do nothing",
            now,
            now - EXPIRY_LOOKBACK,
        )
