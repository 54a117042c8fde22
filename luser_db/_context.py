"""The context variable that carries the open transactions (data source → ``_Tx``).

Its own module so that the executor (which reads it on every statement) and
``_transaction`` (which sets it) can both import it without importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["current_txs", "running_task"]

current_txs: ContextVar[dict[str, Any] | None] = ContextVar("luser_db_transaction", default=None)


def _running_task_lookup() -> Callable[[asyncio.AbstractEventLoop], Any]:
    """``asyncio.current_task(loop)`` as one C call where the interpreter allows.

    The executor asks for the running task on every statement in a transaction (the
    owner check). On CPython 3.11 ``asyncio.current_task`` is a Python function over
    the ``asyncio.tasks._current_tasks`` dict; that dict's ``get`` answers the same
    question without the Python frame. Anywhere else, ``asyncio.current_task``
    itself (tests/luser_db/test_transaction.py pins which one is in use).
    """
    tasks = getattr(asyncio.tasks, "_current_tasks", None)
    if type(tasks) is dict and asyncio.current_task.__module__ == "asyncio.tasks":
        return tasks.get
    return asyncio.current_task


# running_task(loop): the task running on ``loop`` (``get_running_loop()``), or None.
running_task = _running_task_lookup()
