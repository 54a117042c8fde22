"""The context variable that carries the open transactions (data source → ``_Tx``).

Its own module so that the executor (which reads it on every statement) and
``_transaction`` (which sets it) can both import it without importing each other.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["current_txs"]

current_txs: ContextVar[dict[str, Any] | None] = ContextVar("luser_db_transaction", default=None)
