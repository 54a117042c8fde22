"""``retry``: run a statement or a transaction again when that is safe and may help.

Retried by default (``is_retryable``): serialization failure, deadlock, lock
timeout, and a database that was unreachable or lost before anything committed.
Never retried by default: ``CommitUncertain`` -- the connection died while a write
or COMMIT was in flight, so the work may already be applied. Whether running it
again is safe is the caller's knowledge, not the library's: pass
``idempotent=True`` when the work carries its own idempotency key (the open API's
deduction inserts its request id first, so a rerun finds its own row).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from luser_common import ValidationError

from ._context import current_txs
from ._datasource import PRIMARY
from .errors import CommitUncertain, is_retryable

__all__ = ["full_jitter", "retry"]

R = TypeVar("R")
Backoff = Callable[[int], float]

log = logging.getLogger("luser_db.retry")


def full_jitter(base: float = 0.02, cap: float = 1.0) -> Backoff:
    """Exponential backoff with full jitter: attempt n waits U(0, min(cap, base·2ⁿ⁻¹)) s."""

    def delay(attempt: int) -> float:
        return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))

    return delay


async def retry(
    fn: Callable[[], Awaitable[R]],
    *,
    attempts: int = 5,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    backoff: Backoff | None = None,
    idempotent: bool = False,
    using: str = PRIMARY,
) -> R:
    """``await fn()``, again (up to ``attempts`` times in all) while ``retry_on(error)``.

    ``fn`` is a whole unit of work: one statement, or a function that opens its own
    ``transaction()``. Inside an enclosing transaction on ``using`` nothing can be
    retried (the outer transaction is already aborted), so ``fn`` runs once. The
    last error is raised unchanged; an error ``retry_on`` refuses is raised at once.
    ``CommitUncertain`` is retried only with ``idempotent=True``.
    """
    if type(attempts) is not int or attempts < 1:
        raise ValidationError("attempts 必须是正整数", field="attempts")
    txs = current_txs.get()
    tx = None if txs is None else txs.get(using)
    if tx is not None and tx.active:
        return await fn()
    wait = backoff or full_jitter()
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except CommitUncertain:
            if not idempotent or attempt == attempts:
                raise
            log.warning("commit outcome unknown; re-running idempotent work (%d)", attempt)
        except Exception as exc:
            if attempt == attempts or not retry_on(exc):
                raise
            log.info("retrying after %r (attempt %d of %d)", exc, attempt, attempts)
        await asyncio.sleep(wait(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
