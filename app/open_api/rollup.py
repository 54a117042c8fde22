"""The log writer's share of the usage rollup: a batch's router_log_usage rows, in Python.

router_log_usage holds one row per user, 15-minute slot (UTC), token and ability:
calls, successful calls (status < 400) and cost. Two paths keep it exactly in step
with router_logs, each in the transaction that writes the rows (migration 0047):

- the log writer (``app.open_api.logs``) copies each batch straight into its
  months' partitions, which does not fire the parent's statement trigger, and adds
  the batch's groups, summed here, with the one upsert ``add_usage`` sends: no
  transition table on the hot path;
- every other insert into ``router_logs`` itself (crash recovery's ``INSERT``, an
  operator's) is counted by the trigger ``router_logs_roll_up`` (migration 0044),
  which sums the same keys in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from luser_db import Db

__all__ = ["USAGE_SLOT", "UsageRows", "add_usage", "slot_of", "usage_rows"]

USAGE_SLOT = timedelta(minutes=15)  # the rollup's bucket width (migration 0044)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # the buckets' origin (date_bin's in the trigger)


class LoggedCall(Protocol):
    """What the rollup reads of a router_logs row."""

    @property
    def user_id(self) -> int: ...
    @property
    def token_id(self) -> int | None: ...
    @property
    def ability(self) -> str: ...
    @property
    def status_code(self) -> int: ...
    @property
    def cost(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


# (user_id, bucket, token_id, ability) -> [calls, succeeded, cost]
UsageRows = dict[tuple[int, datetime, int, str], list[int]]


def slot_of(moment: datetime) -> datetime:
    """The start of ``moment``'s 15-minute slot, in UTC (the trigger's ``date_bin``).

    A naive ``moment`` is local time, as asyncpg stores it into a timestamptz."""
    return EPOCH + (moment.astimezone(UTC) - EPOCH) // USAGE_SLOT * USAGE_SLOT


def usage_rows(calls: Iterable[LoggedCall]) -> UsageRows:
    """The rollup rows ``calls`` add: the trigger's ``GROUP BY`` and sums.

    On the writer's hot path: a batch's calls mostly share a slot, so the slot is
    computed again only when a call falls outside the last one's."""
    by_index: dict[tuple[int, int, int, str], list[int]] = {}
    lo = hi = EPOCH
    index = 0
    for call in calls:
        at = call.created_at
        if at.tzinfo is None:  # local time, as asyncpg stores a naive datetime
            at = at.astimezone(UTC)
        if not lo <= at < hi:
            index = (at - EPOCH) // USAGE_SLOT
            lo = EPOCH + index * USAGE_SLOT
            hi = lo + USAGE_SLOT
        key = (call.user_id, index, call.token_id or 0, call.ability)
        ok = call.status_code < 400
        sums = by_index.get(key)
        if sums is None:
            by_index[key] = [1, ok, call.cost]
        else:
            sums[0] += 1
            sums[1] += ok
            sums[2] += call.cost
    return {
        (user, EPOCH + index * USAGE_SLOT, token, ability): sums
        for (user, index, token, ability), sums in by_index.items()
    }


# Sorted, so two writers adding to the same slots lock them in the same order (as the
# trigger does): one waits for the other's commit instead of deadlocking.
_UPSERT_SQL = """
INSERT INTO router_log_usage AS u (user_id, bucket, token_id, ability, calls, succeeded, cost)
SELECT * FROM unnest(?::bigint[], ?::timestamptz[], ?::bigint[], ?::text[],
                     ?::bigint[], ?::bigint[], ?::bigint[])
ORDER BY 1, 2, 3, 4
ON CONFLICT (user_id, bucket, token_id, ability) DO UPDATE
SET calls = u.calls + excluded.calls,
    succeeded = u.succeeded + excluded.succeeded,
    cost = u.cost + excluded.cost
"""


async def add_usage(groups: UsageRows) -> None:
    """Add ``groups`` to router_log_usage: one statement, in the caller's transaction."""
    if not groups:
        return
    users, buckets, tokens, abilities = zip(*groups, strict=True)
    calls, succeeded, cost = zip(*groups.values(), strict=True)
    await Db.execute(_UPSERT_SQL, users, buckets, tokens, abilities, calls, succeeded, cost)
