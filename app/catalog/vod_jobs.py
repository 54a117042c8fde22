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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from app.catalog.deletions import DeletionReport, MediaDeletions
from app.catalog.media import Media, PullReport
from luser_common import AppError
from luser_common.tasks import every
from luser_config.schema import VodConfig

__all__ = ["VodJobs", "VodJobsReport", "install"]

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
        return self.config.tencent.event_mode == "pull"

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


def install(app: Starlette) -> None:
    """Chain the jobs after ``app``'s own lifespan (which builds ``app.state.services``)."""
    inner: Callable[[Any], Any] = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            config: VodConfig = app.state.config.vod
            task = None
            if config.jobs_interval_seconds > 0:
                jobs = VodJobs(app.state.services.media, config)
                task = asyncio.create_task(
                    every(config.jobs_interval_seconds, jobs.run_once, name="vod-jobs")
                )
            try:
                yield state
            finally:
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan
