"""Deleting media at the VOD provider: a durable job, retried with backoff.

An admin's delete soft-deletes the video and, in the same transaction, queues its
media in ``vod_deletions`` (migration 0038). :meth:`MediaDeletions.run_once` works
off the due rows: each is claimed by pushing its next attempt past a lease (so
two workers never call the provider for the same row at once), the provider is
called outside any transaction, and only then is the row settled:

- deleted at the provider, or unknown there (already gone: logged) -> ``done``;
- still used by another live video (an admin named the same media) -> ``done``,
  ``in_use``, nothing deleted;
- a failure -> retried after ``interval * 2**(attempts-1)`` (capped), and after
  ``max_attempts`` left ``failed`` for an operator (``luser videos deletions``).

The video row is kept (soft-deleted) whatever happens, so its media id is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.catalog.models import Video
from app.catalog.providers import ProviderLookup, guarded, pick
from luser_common import AppError, utc_now
from luser_db import Db, Field, Model

__all__ = ["DeletionReport", "MediaDeletions", "VodDeletion", "queue_media_deletion"]

logger = logging.getLogger("luser.vod")

MAX_BACKOFF_SECONDS = 6 * 3600
BATCH = 50


class VodDeletion(Model, table="vod_deletions"):
    id: int = Field(primary_key=True)
    video_id: int | None = None
    provider: str = ""
    media_id: str = ""
    status: str = "pending"
    outcome: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    done_at: datetime | None = None


async def queue_media_deletion(video: Video) -> None:
    """Queue ``video``'s media for deletion; call inside the soft delete's transaction.

    Media already queued (another video with the same media was deleted before) is
    queued again as pending, so the in-use check runs once more.
    """
    if not video.media_id:
        return
    await Db.execute(
        "insert into vod_deletions (video_id, provider, media_id) values (?, ?, ?)"
        " on conflict (provider, media_id) do update set status = 'pending', outcome = null,"
        " attempts = 0, next_attempt_at = now(), video_id = excluded.video_id, updated_at = now()"
        " where vod_deletions.status <> 'pending'",
        video.id,
        video.provider,
        video.media_id,
    )


@dataclass(frozen=True)
class DeletionReport:
    deleted: int = 0
    unknown: int = 0
    in_use: int = 0
    retrying: int = 0
    failed: int = 0


class MediaDeletions:
    def __init__(
        self, providers: ProviderLookup, *, interval_seconds: float, max_attempts: int
    ) -> None:
        self.providers = providers
        self.interval_seconds = interval_seconds
        self.max_attempts = max_attempts

    async def run_once(self, now: datetime | None = None) -> DeletionReport:
        """Try every due deletion once; what happened, counted."""
        counts = {"deleted": 0, "unknown": 0, "in_use": 0, "retrying": 0, "failed": 0}
        for row in await self._claim(now or utc_now()):
            counts[await self._attempt(row)] += 1
        return DeletionReport(**counts)

    async def _claim(self, now: datetime) -> list[VodDeletion]:
        # The lease covers one provider call per row (its timeout is well below it).
        lease = now + timedelta(seconds=max(300.0, self.interval_seconds))
        return await VodDeletion.find(
            "update vod_deletions set next_attempt_at = ?, attempts = attempts + 1,"
            " updated_at = now()"
            " where id in (select id from vod_deletions where status = 'pending'"
            " and next_attempt_at <= ? order by next_attempt_at limit ? for update skip locked)"
            " returning *",
            lease,
            now,
            BATCH,
        )

    async def _attempt(self, row: VodDeletion) -> str:
        if await _still_used(row):
            await _settle(row, "in_use")
            logger.info("media %s/%s kept: a live video uses it", row.provider, row.media_id)
            return "in_use"
        try:
            provider = pick(self.providers, row.provider)
            existed = await guarded(row.provider, provider.delete_media(row.media_id))
        except AppError as exc:
            return await self._failed(row, exc)
        if not existed:
            logger.warning(
                "media %s/%s unknown at the provider: treated as deleted",
                row.provider,
                row.media_id,
            )
        await _settle(row, "deleted" if existed else "unknown_media")
        return "deleted" if existed else "unknown"

    async def _failed(self, row: VodDeletion, exc: AppError) -> str:
        error = f"{exc.code}: {exc.message}"[:500]
        if row.attempts >= self.max_attempts:
            await Db.execute(
                "update vod_deletions set status = 'failed', last_error = ?, updated_at = now()"
                " where id = ?",
                error,
                row.id,
            )
            logger.error("media %s/%s not deleted: %s", row.provider, row.media_id, error)
            return "failed"
        delay = min(self.interval_seconds * 2 ** (row.attempts - 1), MAX_BACKOFF_SECONDS)
        await Db.execute(
            "update vod_deletions set last_error = ?, next_attempt_at = ?, updated_at = now()"
            " where id = ?",
            error,
            utc_now() + timedelta(seconds=delay),
            row.id,
        )
        logger.warning(
            "media %s/%s deletion failed (%s), retrying", row.provider, row.media_id, error
        )
        return "retrying"

    async def retry_failed(self) -> int:
        """Queue every failed deletion again (an operator fixed the cause)."""
        return await Db.execute(
            "update vod_deletions set status = 'pending', attempts = 0, next_attempt_at = now(),"
            " updated_at = now() where status = 'failed'"
        )

    async def pending(self, *, include_done: bool = False, limit: int = 100) -> list[VodDeletion]:
        query = VodDeletion.query()
        if not include_done:
            query = query.where("status <> 'done'")
        return await query.order_by("id desc").limit(limit).all()


async def _still_used(row: VodDeletion) -> bool:
    return (
        await Video.query()
        .where("deleted_at is null")
        .where("provider = ? and media_id = ?", row.provider, row.media_id)
        .exists()
    )


async def _settle(row: VodDeletion, outcome: str) -> None:
    await Db.execute(
        "update vod_deletions set status = 'done', outcome = ?, last_error = null,"
        " done_at = now(), updated_at = now() where id = ?",
        outcome,
        row.id,
    )
