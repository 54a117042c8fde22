"""Crash recovery: what a hard kill (SIGKILL, power loss) left unfinished is finished here.

A charged call leaves its ``quota_deductions`` row at once (the deduction commits
before any work), while its ``router_logs`` row waits on the log writer's queue,
and a keyed call's outcome is stored only when it answers. A process killed in
between loses both. ``recover`` repairs them from the deduction rows, once those
are ``older_than`` the horizon (10 minutes by default: far longer than any live
node keeps a row queued or a call running, so a live node's work is never
"recovered" twice), in one transaction under an advisory lock:

1. a keyed call that never stored an outcome died mid-call: it is refunded and
   its outcome stored as 502 ``CALL_INTERRUPTED``, so its key replays that
   failure (and never runs for free);
2. every charge without a log row gets one, rebuilt from the deduction row: the
   caller's request id, path, ability, the cost actually kept (0 when refunded)
   and the stored status/code of a keyed call, else status 0 and error code
   ``LOG_RECOVERED`` (how the call ended is unknown). Latency, channel and client
   address are not known and stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import luser_db
from app.open_api.errors import CallInterrupted
from luser_db import transaction

__all__ = ["RECOVERY_HORIZON", "RecoveryReport", "recover"]

RECOVERY_HORIZON = timedelta(minutes=10)
_LOCK_KEY = 0x6F70656E72656376  # "openrecv"

_INTERRUPTED_SQL = """
WITH dead AS (
    UPDATE quota_deductions
    SET refunded_at = now(), finished_at = now(),
        outcome_status = $3, outcome_code = $4, outcome_message = $5
    WHERE keyed AND finished_at IS NULL AND refunded_at IS NULL
      AND created_at >= now() - $2::interval AND created_at < now() - $1::interval
    RETURNING user_id, token_id, amount
), wallets AS (
    UPDATE users u SET balance = u.balance + d.total
    FROM (SELECT user_id, sum(amount) AS total FROM dead GROUP BY user_id) d
    WHERE u.id = d.user_id
), tokens AS (
    UPDATE api_tokens t SET used_quota = greatest(t.used_quota - d.total, 0)
    FROM (SELECT token_id, sum(amount) AS total FROM dead GROUP BY token_id) d
    WHERE t.id = d.token_id
)
SELECT count(*) FROM dead
"""

# The live row of a charge carries its deduction id; its created_at is the app's clock
# at the end of the call, compared with slack for clock skew between app and database.
_REBUILD_SQL = """
INSERT INTO router_logs
    (request_id, user_id, token_id, path, ability, status_code, error_code, latency_ms,
     units, cost, created_at, deduction_id)
SELECT coalesce(d.log_request_id, d.request_id), d.user_id, d.token_id, d.path, d.ability,
       coalesce(d.outcome_status, 0), coalesce(d.outcome_code, 'LOG_RECOVERED'), 0, 1,
       CASE WHEN d.refunded_at IS NULL THEN d.amount ELSE 0 END, d.created_at, d.request_id
FROM quota_deductions d
WHERE d.ability IS NOT NULL AND d.path IS NOT NULL
  AND d.created_at >= now() - $2::interval AND d.created_at < now() - $1::interval
  AND NOT EXISTS (
      SELECT 1 FROM router_logs l
      WHERE l.deduction_id = d.request_id
        AND l.created_at >= now() - $2::interval - interval '1 hour'
  )
"""


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    interrupted: int  # keyed calls refunded as CALL_INTERRUPTED
    logs_rebuilt: int


async def recover(
    *, older_than: timedelta = RECOVERY_HORIZON, lookback: timedelta = timedelta(days=1)
) -> RecoveryReport:
    """Finish what dead processes left: deductions between ``lookback`` and ``older_than`` ago."""
    if older_than < timedelta(0) or lookback <= older_than:
        raise ValueError("need 0 <= older_than < lookback")
    async with transaction(), luser_db.connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
            return RecoveryReport(0, 0)  # another node is recovering right now
        interrupted = await conn.fetchval(
            _INTERRUPTED_SQL,
            older_than,
            lookback,
            CallInterrupted.status_code,
            CallInterrupted.code,
            CallInterrupted.default_message,
        )
        status = await conn.execute(_REBUILD_SQL, older_than, lookback)
    return RecoveryReport(int(interrupted), int(status.split()[-1]))
