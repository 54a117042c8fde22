"""Which plan level a user may watch. The commerce layer plugs in its subscriptions."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

FREE_LEVEL = 0


@runtime_checkable
class EntitlementChecker(Protocol):
    async def level_for(self, user_id: int) -> int:
        """The highest ``required_level`` this user may watch in full (0 = free videos only)."""
        ...


class FreeTierOnly:
    """The default until subscriptions exist: everyone gets free videos in full."""

    async def level_for(self, user_id: int) -> int:
        return FREE_LEVEL
