"""luser_db: an async ActiveRecord ORM on asyncpg.

``Model`` / ``Field`` declare tables, ``Model.query()`` builds immutable queries,
``Db`` / ``Record`` run SQL without a model, ``transaction()`` spans calls
through a context variable. The pool opens lazily from luser_config; see
docs/orm.md.
"""

from luser_common import Page

from . import cache
from ._connection import Connection, connection, direct_connection
from ._listen import Listener, ListenStats, Notification, listen, listen_stats, notify
from ._observe import QueryEvent, configure_sql_log, on_query
from ._pgbouncer import SessionStateRefused
from ._pool import PoolStats, close, get_pool, init, pool_stats, reset
from ._replicas import ReplicaStats, check_replicas, replica_stats
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
from .bulk import UpsertResult
from .db import Db, DbSource
from .embedded import start_embedded, stop_embedded
from .errors import CommitUncertain, PoolClosed, ReadOnlyError, is_retryable, sqlstate
from .fields import Field
from .generate import generate_models
from .keyset import InvalidCursor, KeysetPage
from .model import Model
from .query import QueryBuilder
from .record import Record
from .relations import RelationNotLoaded, belongs_to, has_many, has_one, many_to_many
from .templates import SqlTemplateError, render_template, set_sql_dirs
from .types import Codec, register_type, unregister_type

__all__ = [
    "Codec",
    "CommitUncertain",
    "Connection",
    "Db",
    "DbSource",
    "Expr",
    "Field",
    "InvalidCursor",
    "KeysetPage",
    "ListenStats",
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
    "RelationNotLoaded",
    "ReplicaStats",
    "SessionStateRefused",
    "SharedConnectionError",
    "SqlTemplateError",
    "UpsertResult",
    "belongs_to",
    "cache",
    "check_replicas",
    "close",
    "configure_sql_log",
    "connection",
    "current_connection",
    "direct_connection",
    "full_jitter",
    "generate_models",
    "get_pool",
    "has_many",
    "has_one",
    "in_transaction",
    "init",
    "is_retryable",
    "like_contains",
    "like_escape",
    "listen",
    "listen_stats",
    "many_to_many",
    "notify",
    "on_commit",
    "on_query",
    "on_rollback",
    "pool_stats",
    "quote_ident",
    "register_type",
    "render_template",
    "replica_stats",
    "reset",
    "retry",
    "retry_transaction",
    "set_sql_dirs",
    "sqlstate",
    "start_embedded",
    "stop_embedded",
    "to_dollar",
    "transaction",
    "transactional",
    "unregister_type",
]
