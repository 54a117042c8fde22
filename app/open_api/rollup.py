"""The usage rollup, caught up off the write path (migration 0047).

router_log_usage holds one row per user, 15-minute slot (UTC), token and ability:
calls, successful calls (status < 400) and cost. Nothing counts a row when it is
inserted: the log writer only copies. ``catch_up`` runs the database function
``open_api_rollup_catch_up()``, which adds every committed router_logs row past the
last id it counted (whoever wrote it: the writer, crash recovery, an operator) and
moves that id on. The service runs it every ``open_api.rollup_interval_seconds``,
and every usage report runs it before reading, so a report counts every call
committed before it was asked for: its cost grows with the days asked for and the
rows since the last run, never with all the calls made.
"""

from __future__ import annotations

from datetime import timedelta

from luser_db import Db

__all__ = ["LOCK_WAIT", "catch_up"]

# How long a run waits for in-flight writers (and partition DDL queued before it):
# past it, the run counts nothing and the next one does.
LOCK_WAIT = timedelta(seconds=1)


async def catch_up(*, lock_wait: timedelta = LOCK_WAIT) -> int | None:
    """Add the logged rows not yet counted to the rollup; the number of rollup rows
    added or updated, or None when writers held router_logs past ``lock_wait``."""
    # On the primary: it writes, and a report that follows must see what it added.
    return await Db.use("primary").query_int(
        "SELECT open_api_rollup_catch_up(?::interval)", lock_wait
    )
