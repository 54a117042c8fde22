"""What each token could still be charged, as its latest deduction left it: a hint.

Read-only calls may start their work while their charge commits (see
``OpenApi.call``); the result is released only once the charge has committed. The
hint decides when that is worth it: a token whose last deduction left at least this
call's cost will most likely be charged again, so its work starts at once. A token
with no hint yet, or one whose wallet or quota ran low, is charged first and served
after, so a drained wallet never gets upstream work for free. The hint is never used
to admit a call: the deduction alone does that.
"""

from __future__ import annotations

from app.open_api.quota import Deduction
from app.open_api.tokens import TokenInfo

__all__ = ["Headroom"]


class Headroom:
    """Token id -> nano-units chargeable after its latest deduction (bounded, approximate)."""

    def __init__(self, max_tokens: int = 100_000) -> None:
        self._left: dict[int, int] = {}
        self._max_tokens = max_tokens

    def covers(self, token_id: int, cost: int) -> bool:
        left = self._left.get(token_id)
        return left is not None and left >= cost

    def record(self, info: TokenInfo, deduction: Deduction) -> None:
        if deduction.balance_after is None:  # a replay: nothing new was learned
            return
        left = deduction.balance_after
        if info.quota_limit >= 0 and deduction.used_quota_after is not None:
            left = min(left, info.quota_limit - deduction.used_quota_after)
        if len(self._left) >= self._max_tokens and info.token_id not in self._left:
            self._left.clear()  # cheaper than LRU bookkeeping; hints rebuild on the next call
        self._left[info.token_id] = left

    def forget(self, token_id: int) -> None:
        """After a refusal: serve this token's next call only after its charge."""
        self._left.pop(token_id, None)

    def __len__(self) -> int:
        return len(self._left)
