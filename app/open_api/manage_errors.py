"""Errors of the open API's management operations (tokens, wallets, configuration).

Conflict 409 ........ BalanceOverflow  409 BALANCE_OVERFLOW
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from luser_common import AppError, Conflict

__all__ = ["MAX_BALANCE", "BalanceOverflow", "constraint_errors"]

# users.balance is a bigint (nano-units).
MAX_BALANCE = 2**63 - 1


class BalanceOverflow(Conflict):
    """A credit would take the wallet past the largest balance the column can hold."""

    code = "BALANCE_OVERFLOW"
    default_message = f"充值后余额将超过上限 ({MAX_BALANCE} 纳单位)"


@contextmanager
def constraint_errors(**meanings: AppError) -> Iterator[None]:
    """Re-raise luser_db's error for a violated constraint named in ``meanings`` as
    the domain error given for it; every other error passes unchanged."""
    try:
        yield
    except AppError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        meaning = meanings.get(str(details.get("constraint", "")))
        if meaning is None:
            raise
        raise meaning from exc
