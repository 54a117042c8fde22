"""luser_db: an async ActiveRecord ORM on asyncpg.

``Model`` / ``Field`` declare tables, ``Model.query()`` builds immutable queries,
``Db`` / ``Record`` run SQL without a model, ``transaction()`` spans calls
through a context variable. The pool opens lazily from luser_config; see
docs/orm.md.
"""

from luser_common import Page

from . import cache
from ._connection import Connection, connection
from ._listen import Listener, Notification, listen, notify
from ._observe import QueryEvent, configure_sql_log, on_query
from ._pool import PoolStats, close, get_pool, init, pool_stats, reset
from ._retry import full_jitter, retry
from ._sql import Expr, like_contains, like_escape, quote_ident, to_dollar
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
from .types import Codec, register_type, unregister_type

__all__ = [
    "Codec",
    "CommitUncertain",
    "Connection",
    "Db",
    "DbSource",
    "Expr",
    "Field",
    "Listener",
    "Model",
    "Notification",
    "Page",
    "PoolClosed",
    "PoolStats",
    "QueryBuilder",
    "QueryEvent",
    "ReadOnlyError",
    "Record",
    "SharedConnectionError",
    "cache",
    "close",
    "configure_sql_log",
    "connection",
    "current_connection",
    "full_jitter",
    "get_pool",
    "in_transaction",
    "init",
    "is_retryable",
    "like_contains",
    "like_escape",
    "listen",
    "notify",
    "on_commit",
    "on_query",
    "on_rollback",
    "pool_stats",
    "quote_ident",
    "register_type",
    "reset",
    "retry",
    "retry_transaction",
    "start_embedded",
    "stop_embedded",
    "to_dollar",
    "transaction",
    "transactional",
    "unregister_type",
]
