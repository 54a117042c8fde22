"""The VOD background work: provider deletions and, in pull mode, Tencent events.

:func:`install` runs :meth:`VodJobs.run_once` every ``vod.jobs_interval_seconds``
inside the service (0 turns that off; ``luser videos jobs`` runs it instead).
Several processes may run it at once: deletions are claimed row by row, and a
pulled event is applied once by its id however many processes pulled it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.catalog.deletions import DeletionReport, MediaDeletions
from app.catalog.media import Media, PullReport
from app.settings import TencentVodConfig, VodConfig
from app.vod.registry import vod_section
from luser_common import AppError
from luser_common.tasks import every

__all__ = ["VodJobs", "VodJobsReport", "running"]

logger = logging.getLogger("luser.vod")


@dataclass(frozen=True)
class VodJobsReport:
    deletions: DeletionReport | None
    events: PullReport | None


class VodJobs:
    def __init__(self, media: Media, config: VodConfig) -> None:
        self.media = media
        self.config = config
        self.deletions = MediaDeletions(
            media.providers,
            interval_seconds=config.jobs_interval_seconds or 30,
            max_attempts=config.delete_max_attempts,
        )

    @property
    def pulls_events(self) -> bool:
        tencent = vod_section(self.config, "tencent")
        return isinstance(tencent, TencentVodConfig) and tencent.event_mode == "pull"

    async def run_once(self) -> VodJobsReport:
        """One pass of each job; one failing does not stop the other."""
        deletions = events = None
        try:
            deletions = await self.deletions.run_once()
        except AppError as exc:
            logger.warning("media deletion pass failed: %s", exc)
        if self.pulls_events:
            try:
                events = await self.media.pull_events("tencent")
            except AppError as exc:
                logger.warning("pulling Tencent VOD events failed: %s", exc)
        return VodJobsReport(deletions, events)


@contextlib.asynccontextmanager
async def running(media: Media, config: VodConfig) -> AsyncIterator[None]:
    """Run the jobs every ``config.jobs_interval_seconds`` while inside (0: never)."""
    task = None
    if config.jobs_interval_seconds > 0:
        jobs = VodJobs(media, config)
        task = asyncio.create_task(
            every(config.jobs_interval_seconds, jobs.run_once, name="vod-jobs")
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
