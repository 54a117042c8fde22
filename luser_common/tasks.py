"""``every(seconds, job, name=...)``: the one periodic-job loop, with one policy.

A job that raises is logged (with its name and traceback) and runs again at the
next tick; the loop never dies of a bad pass. Cancellation is not an error: it is
re-raised at once, so ``task.cancel()`` stops the loop cleanly. Ticks are spaced
``seconds`` apart from the end of one run to the start of the next (no pile-up
when a run is slow).

    task = asyncio.create_task(every(3600, sweep_tokens, name="sweep-tokens"))
    ...
    task.cancel()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

__all__ = ["every"]

log = logging.getLogger("luser.tasks")


async def every(
    seconds: float,
    job: Callable[[], Awaitable[Any] | Any],
    *,
    name: str,
    first: float | None = None,
) -> NoReturn:
    """Run ``job()`` (sync or async) every ``seconds`` (0: back to back, yielding to
    the loop in between); the first run after ``first`` seconds (default: ``seconds``)."""
    if not seconds >= 0:
        raise ValueError(f"every(): seconds must be >= 0, got {seconds!r}")
    delay = seconds if first is None else first
    while True:
        await asyncio.sleep(delay)  # sleep(0) still yields: a zero interval cannot starve the loop
        delay = seconds
        try:
            result = job()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job %s failed; it runs again in %ss", name, seconds)
