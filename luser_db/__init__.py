"""luser_db: an async ActiveRecord ORM on asyncpg.

``Model`` / ``Field`` declare tables, ``Model.query()`` builds immutable queries,
``Db`` / ``Record`` run SQL without a model, ``transaction()`` spans calls
through a context variable. The pool opens lazily from luser_config; see
docs/orm.md.
"""

from luser_common import Page

from ._connection import Connection, connection
from ._listen import Listener, Notification, listen, notify
from ._observe import QueryEvent, on_query
from ._pool import close, get_pool, init, reset
from ._retry import full_jitter, retry
from ._sql import quote_ident, to_dollar
from ._transaction import (
    SharedConnectionError,
    current_connection,
    in_transaction,
    on_commit,
    on_rollback,
    retry_transaction,
    transaction,
    transactional,
)
from .db import Db, DbSource
from .embedded import start_embedded, stop_embedded
from .errors import CommitUncertain, PoolClosed, ReadOnlyError, is_retryable
from .fields import Field
from .model import Model
from .query import QueryBuilder
from .record import Record

__all__ = [
    "CommitUncertain",
    "Connection",
    "Db",
    "DbSource",
    "Field",
    "Listener",
    "Model",
    "Notification",
    "Page",
    "PoolClosed",
    "QueryBuilder",
    "QueryEvent",
    "ReadOnlyError",
    "Record",
    "SharedConnectionError",
    "close",
    "connection",
    "current_connection",
    "full_jitter",
    "get_pool",
    "in_transaction",
    "init",
    "is_retryable",
    "listen",
    "notify",
    "on_commit",
    "on_query",
    "on_rollback",
    "quote_ident",
    "reset",
    "retry",
    "retry_transaction",
    "start_embedded",
    "stop_embedded",
    "to_dollar",
    "transaction",
    "transactional",
]
