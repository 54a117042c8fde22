"""Read-only admin reports, in SQL: revenue per day and active subscribers.

Sums are cast back to ``bigint``: PostgreSQL's ``sum(bigint)`` is ``numeric``,
and amounts stay integers in fen all the way to the JSON.
"""

from __future__ import annotations

from datetime import date

from luser_common import Page
from luser_db import Db, Record

__all__ = ["active_subscribers", "daily_revenue"]

# Beijing wall-clock date without relying on the server's tz database (no DST since 1991).
_BEIJING_DAY = "((o.paid_at AT TIME ZONE 'UTC') + interval '8 hours')::date"


async def daily_revenue(
    page: int, size: int, since: date | None = None, until: date | None = None
) -> Page[Record]:
    """Per Beijing day of payment: paid orders, gross, refunded (so far) and net fen."""
    where, params = ["o.paid_at IS NOT NULL"], []
    if since is not None:
        where.append(f"{_BEIJING_DAY} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{_BEIJING_DAY} <= ?")
        params.append(until)
    return await Db.paginate(
        page,
        size,
        f"SELECT {_BEIJING_DAY} AS day, count(*)::bigint AS orders,"
        " sum(o.amount_fen)::bigint AS gross_fen, sum(o.refunded_fen)::bigint AS refunded_fen,"
        " sum(o.amount_fen - o.refunded_fen)::bigint AS net_fen",
        f"FROM orders o WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1 DESC",
        *params,
    )


async def active_subscribers(page: int, size: int, min_level: int | None = None) -> Page[Record]:
    """Users whose schedule covers now, with their level and how long access lasts."""
    having = "" if min_level is None else " HAVING max(p.level) >= ?"
    params = [] if min_level is None else [min_level]
    return await Db.paginate(
        page,
        size,
        "SELECT p.user_id, u.email, u.phone, u.nickname, max(p.level)::int AS level,"
        " max(p.ends_at) AS current_period_ends_at,"
        " (SELECT max(f.ends_at) FROM subscription_periods f WHERE f.user_id = p.user_id)"
        " AS access_ends_at",
        "FROM subscription_periods p JOIN users u ON u.id = p.user_id"
        " WHERE p.starts_at <= now() AND p.ends_at > now()"
        f" GROUP BY p.user_id, u.email, u.phone, u.nickname{having} ORDER BY p.user_id",
        *params,
    )
