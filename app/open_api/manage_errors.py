"""Errors of the open API's management operations (tokens, wallets, configuration).

Conflict 409 ........ BalanceOverflow  409 BALANCE_OVERFLOW
"""

from __future__ import annotations

from luser_common import Conflict

__all__ = ["MAX_BALANCE", "BalanceOverflow"]

# users.balance is a bigint (nano-units).
MAX_BALANCE = 2**63 - 1


class BalanceOverflow(Conflict):
    """A credit would take the wallet past the largest balance the column can hold."""

    code = "BALANCE_OVERFLOW"
    default_message = f"充值后余额将超过上限 ({MAX_BALANCE} 纳单位)"
