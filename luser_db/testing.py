"""Pytest plugin: a fresh PostgreSQL database per test session, plus ORM fixtures.

The server comes from ``LUSER_TEST_DATABASE_URL`` when set, else from
testcontainers when ``LUSER_TEST_TESTCONTAINERS=1`` (needs Docker), else from the
embedded PostgreSQL wheel. Each session creates its own database and drops it at
the end, so parallel sessions never see each other's rows.

Fixtures:
    database_url  (session) URL of the fresh database: empty, or migrated with the
                            folder named by the ``luser_db_migrations`` ini option
    db_pool       (session) the global luser_db pool initialised on that database
    db_tx         (test)    a transaction rolled back after the test; ORM calls made
                            by the test and by app code it awaits join it

``assert_queries(n)`` fails when a block sends a different number of queries
(catches N+1 patterns); ``count_statements()`` records every statement that ran
(from any task) and sorts them into reads and writes.

The async fixtures need pytest-asyncio (the plugin itself loads without it, and
``db_pool`` / ``db_tx`` then fail with the install hint when a test asks for them).
They live on the session event loop: set ``asyncio_mode = "auto"``
(or mark tests ``@pytest.mark.asyncio``) and ``asyncio_default_fixture_loop_scope =
"session"`` / ``asyncio_default_test_loop_scope = "session"`` (docs/orm.md, Testing).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import pytest

from .embedded import start_embedded, with_database

try:
    import pytest_asyncio
except ImportError:  # the plugin loads without it; only its async fixtures need it
    pytest_asyncio = None  # type: ignore[assignment]

MIGRATIONS_INI = "luser_db_migrations"

__all__ = [
    "QueryLog",
    "StatementCounter",
    "assert_queries",
    "count_statements",
    "create_test_database",
    "database_name",
    "database_url",
    "db_pool",
    "db_tx",
    "drop_test_database",
    "open_server_stream",
    "rollback_transaction",
    "server_address",
    "server_url",
    "via_local_port",
]


def server_url() -> str:
    """URL of the server test databases are created on."""
    explicit = os.environ.get("LUSER_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if os.environ.get("LUSER_TEST_TESTCONTAINERS") == "1":
        return _testcontainers_url()
    return start_embedded(os.environ.get("LUSER_TEST_EMBEDDED_DIR", ".luser/pgdata"))


def _testcontainers_url() -> str:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    import atexit

    atexit.register(container.stop)
    return str(container.get_connection_url())


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def server_address(url: str) -> tuple[str, int]:
    """(host, port) of ``url``'s server; the host is a unix-socket folder when the URL
    names one (``?host=/dir``, as the embedded PostgreSQL's URLs do: it listens on a
    socket in its data folder only). For tests that put a proxy or PgBouncer in front."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    port = int(query.get("port", [parts.port or 5432])[0])
    if parts.hostname:
        return parts.hostname, port
    return query.get("host", ["/var/run/postgresql"])[0], port


async def open_server_stream(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw byte stream to a server address from :func:`server_address` (TCP or socket)."""
    if host.startswith("/"):
        return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
    return await asyncio.open_connection(host, port)


def via_local_port(url: str, port: int) -> str:
    """``url`` with its server replaced by ``127.0.0.1:port`` (a proxy or PgBouncer in
    front), keeping user and database; a ``?host=`` socket folder is dropped."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    query = "&".join(
        f"{k}={v}"
        for k, vs in parse_qs(parts.query).items()
        for v in vs
        if k not in ("host", "port")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def create_test_database(base_url: str, prefix: str = "luser_test") -> str:
    """Create a uniquely named database on ``base_url``'s server; return its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(base_url, f'CREATE DATABASE "{name}"'))
    return with_database(base_url, name)


def database_name(url: str) -> str:
    """The database a URL names: its path, never its query (the embedded server's
    ``?host=/path/to/socket`` holds slashes too)."""
    return unquote(urlsplit(url).path.lstrip("/"))


def drop_test_database(base_url: str, url: str) -> None:
    name = database_name(url)
    if not name:
        raise ValueError(f"no database name in {url!r}")
    asyncio.run(_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        MIGRATIONS_INI,
        "migrations folder (relative to the rootdir) applied to the session database",
        default="",
    )


def _migrate(config: pytest.Config, url: str) -> None:
    folder = str(config.getini(MIGRATIONS_INI) or "")
    if not folder:
        return
    from .migrations import Migrator

    asyncio.run(Migrator(url, directory=config.rootpath / folder).up())


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly created database for this test session, migrated when the
    ``luser_db_migrations`` ini option names a folder; dropped at the end."""
    base = server_url()
    url = create_test_database(base)
    try:
        _migrate(request.config, url)
        yield url
    finally:
        drop_test_database(base, url)


def _async_fixture(scope: Literal["session", "function"] = "function") -> Any:
    """``pytest_asyncio.fixture`` on the session loop; without pytest-asyncio, a fixture
    that fails with the install hint when a test asks for it (and only then)."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(scope=scope, loop_scope="session")

    def unavailable(fn: Any) -> Any:
        def fail() -> None:
            pytest.fail(
                f"luser_db.testing: fixture {fn.__name__!r} needs pytest-asyncio "
                "(pip install pytest-asyncio; see docs/orm.md, Tests)",
                pytrace=False,
            )

        fail.__doc__ = fn.__doc__
        return pytest.fixture(scope=scope, name=fn.__name__)(fail)

    return unavailable


@_async_fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[str]:
    """The global luser_db pool, pointed at the session database; closed and reset after."""
    import luser_db

    await luser_db.close()
    luser_db.reset()
    luser_db.init(database_url, min_size=1, max_size=10)
    try:
        yield database_url
    finally:
        await luser_db.close()
        luser_db.reset()


@_async_fixture()
async def db_tx(db_pool: str) -> AsyncIterator[Any]:
    """A transaction rolled back after the test; yields its connection."""
    async with rollback_transaction() as conn:
        yield conn


class rollback_transaction:  # used like a function
    """Open a transaction that every ORM call joins, and always roll it back.

    Unlike ``transaction()`` it may be entered and left from different tasks (pytest
    runs fixture setup, test and teardown as separate tasks), so it checks for
    concurrent use of the connection rather than for the owning task.
    """

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._conn: Any = None
        self._pool: Any = None
        self._xact: Any = None
        self._previous: Any = None
        self._tx: Any = None

    async def __aenter__(self) -> Any:
        from ._pool import get_pool
        from ._transaction import _current, _Tx

        self._pool = await get_pool(self.using)
        self._conn = await self._pool.acquire()
        self._xact = self._conn.transaction()
        await self._xact.start()
        self._previous = _current.get()
        txs = dict(self._previous or {})
        txs[self.using] = self._tx = _Tx(self._conn, self.using, owner=None)
        _current.set(txs)
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        from ._transaction import _current

        self._tx.active = False
        _current.set(self._previous)
        try:
            await self._xact.rollback()
        finally:
            await self._pool.release(self._conn)


class QueryLog:
    """The SQL statements sent while an ``assert_queries`` block ran."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def __call__(self, sql: str) -> None:
        self.statements.append(sql)


@contextmanager
def assert_queries(expected: int) -> Iterator[QueryLog]:
    """Fail unless exactly ``expected`` queries are sent inside the block."""
    from ._exec import listeners

    log = QueryLog()
    listeners.append(log)
    try:
        yield log
    finally:
        listeners.remove(log)
    if len(log) != expected:
        listing = "\n  ".join(log.statements)
        raise AssertionError(f"expected {expected} queries, got {len(log)}:\n  {listing}")


_WRITE_VERBS = re.compile(r"\b(insert|update|delete|copy|merge)\b", re.IGNORECASE)
_STEPS = ("begin", "commit", "rollback", "savepoint", "release")


class StatementCounter:
    """The statements that ran while a ``count_statements()`` block was open."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, event: Any) -> None:
        self.statements.append(event.sql)

    @property
    def reads(self) -> list[str]:
        """Statements that only read: SELECT/WITH without a data-changing verb."""
        return [s for s in self.statements if _kind(s) in ("select", "with") and not _writes(s)]

    @property
    def writes(self) -> list[str]:
        """Statements that change data (including WITH ... INSERT/UPDATE and COPY)."""
        return [s for s in self.statements if _kind(s) not in _STEPS and _writes(s)]


def _kind(sql: str) -> str:
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    return head[0].lower() if head else ""


def _writes(sql: str) -> bool:
    return _WRITE_VERBS.search(sql) is not None


@contextmanager
def count_statements() -> Iterator[StatementCounter]:
    """Record every statement luser_db runs inside the block, from any task
    (an ``on_query`` listener: statements that finished, failed ones included)."""
    from ._observe import on_query

    counter = StatementCounter()
    remove = on_query(counter)
    try:
        yield counter
    finally:
        remove()
