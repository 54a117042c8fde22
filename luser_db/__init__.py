"""luser_db: an async ActiveRecord ORM on asyncpg.

``Model`` / ``Field`` declare tables, ``Model.query()`` builds immutable queries,
``Db`` / ``Record`` run SQL without a model, ``transaction()`` spans calls
through a context variable. The pool opens lazily from luser_config; see
docs/orm.md.
"""

from luser_common import Page

from ._pool import close, connection, get_pool, init, reset
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
from .bulk import UpsertResult
from .db import Db, DbSource
from .embedded import start_embedded, stop_embedded
from .fields import Field
from .keyset import InvalidCursor, KeysetPage
from .model import Model
from .query import QueryBuilder
from .record import Record
from .relations import RelationNotLoaded, belongs_to, has_many, has_one, many_to_many

__all__ = [
    "Db",
    "DbSource",
    "Field",
    "InvalidCursor",
    "KeysetPage",
    "Model",
    "Page",
    "QueryBuilder",
    "Record",
    "RelationNotLoaded",
    "SharedConnectionError",
    "UpsertResult",
    "belongs_to",
    "close",
    "connection",
    "current_connection",
    "get_pool",
    "has_many",
    "has_one",
    "in_transaction",
    "init",
    "many_to_many",
    "on_commit",
    "on_rollback",
    "quote_ident",
    "reset",
    "retry_transaction",
    "start_embedded",
    "stop_embedded",
    "to_dollar",
    "transaction",
    "transactional",
]
