"""Subscriptions: grant on payment, shorten on refund, and the entitlement check.

The rule itself lives in :mod:`app.commerce.schedule`. Here a user's grants are
loaded under a lock on the user's row, changed, laid out again and the access
periods rewritten, all inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.commerce.models import Order, Subscription, SubscriptionPeriod
from app.commerce.schedule import Grant, consumed_seconds, schedule
from app.commerce.status import SubscriptionStatus
from luser_common import utc_now
from luser_db import Db, in_transaction

__all__ = ["SubscriptionEntitlements", "SubscriptionStatusView", "Subscriptions"]

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class SubscriptionStatusView:
    """A user's subscription as the API shows it."""

    user_id: int
    active: bool
    level: int
    current_period_ends_at: datetime | None
    access_ends_at: datetime | None
    periods: list[SubscriptionPeriod]


class Subscriptions:
    """Grant, shorten and read subscription windows."""

    async def grant(self, order: Order, now: datetime | None = None) -> Subscription:
        """Add the time ``order`` bought to its user's schedule (call inside a transaction)."""
        _require_transaction()
        assert order.plan_id is not None, "only plan orders grant time"
        now = now or utc_now()
        await _lock_user(order.user_id)
        seconds = order.duration_days * DAY_SECONDS
        sub = Subscription(
            user_id=order.user_id,
            order_id=order.id,
            plan_id=order.plan_id,
            level=order.plan_level,
            granted_at=now,
            purchased_seconds=seconds,
            duration_seconds=seconds,
            status=SubscriptionStatus.ACTIVE,
        )
        await sub.save()
        await self._relayout(order.user_id)
        return sub

    async def shorten_for_refund(
        self, order: Order, refund_fen: int, *, full: bool, now: datetime | None = None
    ) -> Subscription | None:
        """Remove the share of the order's time that ``refund_fen`` pays back.

        Time already used stays used; ``full`` (the order is now refunded in
        full) revokes whatever is left.
        """
        _require_transaction()
        now = now or utc_now()
        await _lock_user(order.user_id)
        sub = await Subscription.query().where("order_id = ?", order.id).first()
        if sub is None:
            return None
        pieces = schedule(await _grants(order.user_id))
        used = consumed_seconds(pieces, sub.id, now, round_up=not full)
        removed = sub.purchased_seconds * refund_fen // order.amount_fen
        target = used if full else max(used, sub.duration_seconds - removed)
        sub.duration_seconds = min(sub.duration_seconds, target)
        if full:
            sub.status = SubscriptionStatus.REVOKED
        await sub.update()
        await self._relayout(order.user_id)
        return sub

    async def _relayout(self, user_id: int) -> None:
        pieces = schedule(await _grants(user_id))
        await Db.execute("DELETE FROM subscription_periods WHERE user_id = ?", user_id)
        if pieces:
            await SubscriptionPeriod.batch_save(
                [
                    SubscriptionPeriod(
                        user_id=user_id,
                        subscription_id=p.grant_id,
                        level=p.level,
                        starts_at=p.starts_at,
                        ends_at=p.ends_at,
                    )
                    for p in pieces
                ]
            )
        await Db.execute(
            "UPDATE subscriptions s SET starts_at = p.first, ends_at = p.last, updated_at = now()"
            " FROM (SELECT subscription_id, min(starts_at) AS first, max(ends_at) AS last"
            "       FROM subscription_periods WHERE user_id = ? GROUP BY subscription_id) p"
            " WHERE s.id = p.subscription_id",
            user_id,
        )

    async def level_for(self, user_id: int, now: datetime | None = None) -> int:
        """The level the user may watch now (0: free videos only)."""
        level = await Db.query_int(
            "SELECT coalesce(max(level), 0) FROM subscription_periods"
            " WHERE user_id = ? AND starts_at <= ? AND ends_at > ?",
            user_id,
            now or utc_now(),
            now or utc_now(),
        )
        return level or 0

    async def status(self, user_id: int, now: datetime | None = None) -> SubscriptionStatusView:
        now = now or utc_now()
        periods = await (
            SubscriptionPeriod.query()
            .where("user_id = ? AND ends_at > ?", user_id, now)
            .order_by("starts_at")
            .all()
        )
        current = [p for p in periods if p.starts_at is not None and p.starts_at <= now]
        top = max(current, key=lambda p: p.level) if current else None
        return SubscriptionStatusView(
            user_id=user_id,
            active=top is not None,
            level=top.level if top else 0,
            current_period_ends_at=top.ends_at if top else None,
            access_ends_at=_continuous_end(periods, now),
            periods=periods,
        )


class SubscriptionEntitlements:
    """The ``EntitlementChecker`` play uses: reads the active subscription window."""

    def __init__(self, subscriptions: Subscriptions | None = None) -> None:
        self.subscriptions = subscriptions or Subscriptions()

    async def level_for(self, user_id: int) -> int:
        return await self.subscriptions.level_for(user_id)


def _continuous_end(periods: list[SubscriptionPeriod], now: datetime) -> datetime | None:
    """Until when access lasts without a gap from ``now``."""
    end: datetime | None = None
    for p in periods:  # ordered by starts_at
        assert p.starts_at is not None and p.ends_at is not None
        if p.starts_at > (end or now):
            break
        end = max(end or now, p.ends_at)
    return end


async def _grants(user_id: int) -> list[Grant]:
    subs = await Subscription.query().where("user_id = ?", user_id).all()
    return [
        Grant(s.id, s.level, s.granted_at, s.duration_seconds)  # type: ignore[arg-type]
        for s in subs
    ]


async def _lock_user(user_id: int) -> None:
    # Serialises schedule changes per user: two grants computed side by side
    # would each lay out the timeline without the other.
    await Db.execute("SELECT 1 FROM users WHERE id = ? FOR NO KEY UPDATE", user_id)


def _require_transaction() -> None:
    if not in_transaction():
        raise RuntimeError("subscription changes must run inside a transaction")
