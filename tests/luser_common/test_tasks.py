"""luser_common.tasks.every: log and keep going, re-raise cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from luser_common.tasks import every


async def test_a_failing_job_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    third = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        if runs < 3:
            raise RuntimeError(f"pass {runs} broke")

    caplog.set_level(logging.ERROR, logger="luser.tasks")
    task = asyncio.create_task(every(0.001, job, name="flaky", first=0))
    await asyncio.wait_for(third.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failures = [r for r in caplog.records if "periodic job flaky failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


async def test_cancellation_inside_the_job_stops_the_loop() -> None:
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()  # blocks until cancelled

    task = asyncio.create_task(every(0.001, job, name="blocking", first=0))
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sync_jobs_and_bad_intervals() -> None:
    ran = asyncio.Event()
    task = asyncio.create_task(every(5, ran.set, name="sync", first=0))
    await asyncio.wait_for(ran.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ValueError):
        await every(-1, ran.set, name="negative")
