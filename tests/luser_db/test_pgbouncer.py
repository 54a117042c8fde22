"""luser_db through a real PgBouncer in transaction pooling mode, and ``direct_url``.

The fixtures start a PgBouncer (tests/luser_db/pgbouncer.py; as ``nobody``: it refuses
root) on a free port in front of this session's database, with a server pool of 2 so
clients really share server connections, and stop it afterwards. ``"transaction"``
mode runs on the oldest PgBouncer found (the system's 1.18: it must work with any),
``"transaction_prepared"`` on one >= 1.21 (scripts/build-pgbouncer's 1.24.1) with
``max_prepared_statements = 100``. Without the binary a test needs, it skips, saying
so (CI has both: ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

import luser_db
from luser_common import Conflict
from luser_db import Db, Field, Model, Notification, SessionStateRefused, transaction
from luser_db.migrations import Migrator
from luser_db.migrations.migrator import LOCK_KEY
from luser_db.testing import via_local_port

from . import pgbouncer
from .pgbouncer import BUILD_HINT, Running, run_pgbouncer
from .wire import WireCounter

needs_pgbouncer = pytest.mark.skipif(
    pgbouncer.oldest() is None, reason=f"no pgbouncer binary found ({BUILD_HINT})"
)
needs_prepared = pytest.mark.skipif(
    pgbouncer.with_prepared_statements() is None,
    reason=f"no pgbouncer >= 1.21 found for transaction_prepared ({BUILD_HINT})",
)
needs_old = pytest.mark.skipif(
    pgbouncer.without_prepared_statements() is None,
    reason=f"no pgbouncer < 1.21 found to see transaction_prepared refused ({BUILD_HINT})",
)
pytestmark = needs_pgbouncer

PREPARED_EXTRA = "max_prepared_statements = 100\n"


@pytest.fixture(
    scope="module",
    params=["transaction", pytest.param("transaction_prepared", marks=needs_prepared)],
)
def mode(request: pytest.FixtureRequest) -> str:
    """luser_db's ``pgbouncer`` setting; each picks the PgBouncer it is meant for."""
    return str(request.param)


@pytest.fixture(scope="module")
def bouncer(database_url: str, mode: str) -> Iterator[Running]:
    """A PgBouncer for ``mode``: the oldest found for ``"transaction"``, one >= 1.21 with
    ``max_prepared_statements = 100`` for ``"transaction_prepared"``."""
    if mode == "transaction_prepared":
        binary, extra = pgbouncer.with_prepared_statements(), PREPARED_EXTRA
    else:
        binary, extra = pgbouncer.oldest(), ""
    with run_pgbouncer(database_url, binary, extra=extra) as running:
        yield running


@pytest.fixture(scope="module")
def bouncer_url(bouncer: Running, database_url: str) -> str:
    """This session's database, reached through ``bouncer``."""
    return bouncer.url_for(database_url)


@pytest_asyncio.fixture(loop_scope="session")
async def via_bouncer(
    bouncer_url: str, mode: str, orm_schema: str, database_url: str
) -> AsyncIterator[str]:
    """The default data source through PgBouncer in ``mode``, direct_url direct."""
    await luser_db.close()
    luser_db.reset()
    luser_db.init(bouncer_url, pgbouncer=mode, direct_url=database_url, min_size=1, max_size=10)
    try:
        yield bouncer_url
    finally:
        await luser_db.close()
        luser_db.reset()
        luser_db.init(database_url, min_size=1, max_size=10)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("TRUNCATE orm.videos, orm.users, orm.counters RESTART IDENTITY")
        finally:
            await conn.close()


class Person(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


async def test_the_fixture_is_a_real_pgbouncer_that_refuses_startup_settings(
    bouncer_url: str,
) -> None:
    with pytest.raises(asyncpg.PostgresError, match="unsupported startup parameter"):
        await asyncpg.connect(bouncer_url, server_settings={"lock_timeout": "1s"})


async def _person(name: str, age: int) -> Person:
    person = Person(name=name, email=f"{name}@example.com", age=age)
    assert await person.save()
    return person


async def test_crud_transactions_savepoints_and_paginate(via_bouncer: str) -> None:
    ann = await _person("ann", 30)
    found = await Person.find_by_id(ann.id)
    assert found is not None and found.name == "ann"
    ann.age = 31
    assert await ann.update() is True
    async with transaction():
        await _person("bob", 20)
        with pytest.raises(ZeroDivisionError):
            async with transaction():  # a savepoint on the same server connection
                await _person("cid", 40)
                raise ZeroDivisionError
        async with transaction(statement_timeout=5):  # SET LOCAL: PgBouncer-safe
            assert await Db.query_str("show statement_timeout") == "5s"
    assert [p.name for p in await Person.query().order_by("id").all()] == ["ann", "bob"]
    for i in range(23):
        await _person(f"p{i}", i)
    page = await Person.query().order_by("id").paginate(3, 10)
    assert page.total_row == 25 and [p.name for p in page.items] == [
        "p18",
        "p19",
        "p20",
        "p21",
        "p22",
    ]
    again = await Person.find_by_id(ann.id)
    assert again is not None and again.age == 31
    assert await again.delete() is True
    assert await Person.find_by_id(ann.id) is None


_ITERATE_WORKER = """
import asyncio, json, sys
import luser_db
from luser_common import Conflict
from luser_db import Db

async def main(url, rounds, mode):
    luser_db.init(url, pgbouncer=mode, min_size=1, max_size=32)
    failures = []
    async def one():
        n = 0
        try:
            async for _row in Db.query("orm.counters").order_by("id").iterate(batch=7):
                n += 1
        except Exception as exc:
            failures.append(repr(exc))
            return
        if n != 50:
            failures.append(f"saw {n} rows")
    for _ in range(rounds):
        await asyncio.gather(*(one() for _ in range(32)))
    await luser_db.close()
    print(json.dumps(failures))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


async def test_32_concurrent_iterators_in_two_processes_never_fail(
    via_bouncer: str, mode: str
) -> None:
    await Db.execute("insert into orm.counters (id, n) select i, i from generate_series(1, 50) i")
    rounds = 4
    # Two processes, as two service workers: their cursors' prepared statements meet
    # on the same PgBouncer server connections.
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _ITERATE_WORKER,
            via_bouncer,
            str(rounds),
            mode,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        failures = json.loads(out)
        assert failures == [], f"{len(failures)} of {32 * rounds} iterators failed: {failures[:3]}"


async def test_session_set_is_refused_and_never_leaks_to_other_clients(via_bouncer: str) -> None:
    for sql in (
        "SET luser.leak = 'yes'",
        "select set_config('luser.leak', 'yes', false)",
        "select pg_advisory_lock(42)",
        "create temp table leak_tmp (id int)",
    ):
        with pytest.raises(SessionStateRefused) as info:
            await Db.execute(sql)
        assert info.value.code == "SESSION_STATE_BEHIND_PGBOUNCER" and info.value.status_code == 500
    with pytest.raises(SessionStateRefused):
        async with transaction():
            await Db.execute("SET luser.leak = 'yes'")  # a plain SET outlives COMMIT too
    async with transaction():  # the transaction-scoped forms are fine
        await Db.execute("SET LOCAL luser.leak = 'local'")
        assert await Db.query_str("select current_setting('luser.leak', true)") == "local"
        await Db.execute("select set_config('luser.leak2', 'local', true)")

    others = [await asyncpg.connect(via_bouncer, statement_cache_size=0) for _ in range(8)]
    try:
        seen = []
        for i in range(400):
            seen.append(
                await others[i % 8].fetchval(
                    "select coalesce(current_setting('luser.leak', true), '')"
                    " || coalesce(current_setting('luser.leak2', true), '')"
                )
            )
    finally:
        for conn in others:
            await conn.close()
    leaked = [value for value in seen if value]
    assert leaked == [], f"{len(leaked)} of 400 queries saw another client's setting"


async def test_listen_uses_direct_url_and_recovers_while_statements_use_pgbouncer(
    via_bouncer: str, database_url: str
) -> None:
    got: asyncio.Queue[Notification] = asyncio.Queue()
    reconnected = asyncio.Event()
    before = luser_db.listen_stats()
    async with await luser_db.listen(
        "luser_bouncer", got.put_nowait, on_reconnect=reconnected.set
    ) as listener:
        async with transaction():  # notify() goes through PgBouncer, delivered at COMMIT
            await luser_db.notify("luser_bouncer", "one")
        assert (await asyncio.wait_for(got.get(), 10)).payload == "one"

        direct = await asyncpg.connect(database_url)
        try:
            backend = await direct.fetchval(
                "select pid from pg_stat_activity where pid = $1", listener.pid
            )
            assert backend == listener.pid  # a real backend of its own, not PgBouncer's
            await direct.execute("select pg_terminate_backend($1)", listener.pid)
        finally:
            await direct.close()
        await asyncio.wait_for(reconnected.wait(), 15)
        after = luser_db.listen_stats()
        assert after.lost == before.lost + 1 and after.reconnected == before.reconnected + 1
        await luser_db.notify("luser_bouncer", "two")
        assert (await asyncio.wait_for(got.get(), 10)).payload == "two"


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    (tmp_path / "0001_bounced.up.sql").write_text(
        "create table bounced (id int primary key, note text);"
        " insert into bounced values (1, current_setting('lock_timeout'));"
    )
    (tmp_path / "0001_bounced.down.sql").write_text("drop table bounced;")
    (tmp_path / "0002_index.up.sql").write_text(
        "-- migrate:no-transaction\ncreate index concurrently bounced_note on bounced (note);"
    )
    (tmp_path / "0002_index.down.sql").write_text(
        "-- migrate:no-transaction\ndrop index concurrently bounced_note;"
    )
    return tmp_path


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_db(database_url: str) -> AsyncIterator[str]:
    """A new empty database (the session's holds the service's migrations); dropped after."""
    name = f"luser_pgb_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_run_through_pgbouncer(
    bouncer_url: str, fresh_db: str, migrations_dir: Path
) -> None:
    database_url = fresh_db
    through_bouncer = urlunsplit(urlsplit(bouncer_url)._replace(path=urlsplit(fresh_db).path))

    def migrator(**kw: object) -> Migrator:
        return Migrator(
            through_bouncer,
            directory=migrations_dir,
            pgbouncer=True,
            lock_timeout=3,
            statement_timeout=0,
            **kw,  # type: ignore[arg-type]
        )

    direct = await asyncpg.connect(database_url)
    try:
        # Another runner holds the migration lock: this one waits, then gives up.
        async with direct.transaction():
            await direct.execute("select pg_advisory_xact_lock($1)", LOCK_KEY)
            with pytest.raises(Conflict):
                await migrator(lock_wait=0.5).up()
        # Bounded: a lock transaction that kept a snapshot would make CONCURRENTLY wait forever.
        applied = await asyncio.wait_for(migrator().up(), 60)
        assert [m.version for m in applied] == [1, 2]
        # The limit was SET LOCAL inside the migration's transaction.
        assert await direct.fetchval("select note from bounced") == "3s"
        ours = (  # pg_locks is cluster-wide: other sessions' databases have their own
            "select count(*) from pg_locks l join pg_database d on d.oid = l.database"
            " where l.locktype = 'advisory' and d.datname = current_database()"
        )
        assert await direct.fetchval(ours) == 0  # the lock went with its transaction
        assert [s.state for s in await migrator().status()] == ["applied", "applied"]
        assert [m.version for m in await migrator().down(2)] == [2, 1]
        assert await direct.fetchval("select to_regclass('bounced')") is None
    finally:
        await direct.close()


async def test_a_release_through_pgbouncer_sends_no_reset(
    via_bouncer: str, mode: str, database_url: str
) -> None:
    # asyncpg's reset (RESET ALL, pg_advisory_unlock_all() ...) would run on whichever
    # server PgBouncer picks -- maybe releasing another client's locks -- and cost a
    # round trip per call. PgBouncer gives each server the application_name of the
    # client it serves, which singles out the servers this pool used.
    await luser_db.close()
    luser_db.init(
        via_bouncer,
        pgbouncer=mode,
        min_size=1,
        max_size=3,
        server_settings={"application_name": "luser-no-reset"},
    )
    for _ in range(20):
        assert await Db.query_int("select 1") == 1
    async with transaction():
        await Db.query_int("select 2")
    direct = await asyncpg.connect(database_url)
    try:
        last = await direct.fetch(
            "select query from pg_stat_activity where application_name = 'luser-no-reset'"
        )
    finally:
        await direct.close()
    assert last and not [r for r in last if "pg_advisory_unlock_all" in r["query"]]


async def test_config_keys_pgbouncer_and_direct_url(
    bouncer_url: str, mode: str, database_url: str, orm_schema: str, tmp_path: Path
) -> None:
    import luser_config

    (tmp_path / "default.toml").write_text(
        f'[database]\nurl = "{bouncer_url}"\ndirect_url = "{database_url}"\n'
        f'pgbouncer = "{mode}"\nmin_connections = 0\n'
        f'[database.data_sources.old]\nurl = "{bouncer_url}"\npgbouncer = true\n'
    )
    await luser_db.close()
    luser_db.reset()
    await luser_config.init_config(env="test", config_dir=tmp_path)
    try:
        cfg = luser_config.get_config().database
        assert cfg.pgbouncer == mode and cfg.data_sources["old"].pgbouncer == "transaction"
        assert await Db.query_int("select 1") == 1
        pool = await luser_db.get_pool()
        async with pool.acquire() as conn:
            # >= 1.21 mode keeps asyncpg's statement cache (PgBouncer tracks the names).
            cache = conn._con._stmt_cache.get_max_size()  # type: ignore[attr-defined]
            assert cache == {"transaction": 0, "transaction_prepared": 100}[mode]
        old = await luser_db.get_pool("old")
        async with old.acquire() as conn:
            assert conn._con._stmt_cache.get_max_size() == 0  # type: ignore[attr-defined]
        # LISTEN and the Migrator go to direct_url: lock_timeout as a startup
        # parameter is accepted there (PgBouncer refuses it).
        got: asyncio.Queue[Notification] = asyncio.Queue()
        async with await luser_db.listen("luser_cfg", got.put_nowait):
            await luser_db.notify("luser_cfg", "hi")
            assert (await asyncio.wait_for(got.get(), 10)).payload == "hi"
        # Connected and read (the session database may hold the service's migrations).
        assert {s.state for s in await Migrator(directory=tmp_path).status()} <= {"missing"}
    finally:
        luser_config.reset_config()
        await luser_db.close()
        luser_db.reset()
        luser_db.init(database_url, min_size=1, max_size=10)


def test_pgbouncer_setting_rejects_unknown_modes() -> None:
    from luser_config import DatabaseConfig

    assert DatabaseConfig(pgbouncer="false").pgbouncer is False  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pgbouncer"):
        DatabaseConfig(pgbouncer="session")  # type: ignore[arg-type]


def test_init_accepts_the_same_modes() -> None:
    from luser_common import ConfigError

    with pytest.raises(ConfigError):
        luser_db.init("postgresql://x@127.0.0.1:1/x", name="bouncer_modes", pgbouncer="session")
    luser_db.init("postgresql://x@127.0.0.1:1/x", name="bouncer_modes", pgbouncer=True)
    assert luser_db._pool.settings_of("bouncer_modes").pgbouncer == "transaction"


async def test_type_introspection_leaves_jit_alone(
    via_bouncer: str, mode: str, database_url: str
) -> None:
    # asyncpg turns JIT off with a session set_config() around its type introspection and
    # back on in a later statement: through PgBouncer those land on different servers.
    # Busy clients make PgBouncer hand each statement to whichever server is free.
    direct = await asyncpg.connect(database_url)
    await direct.execute(
        "drop type if exists orm.mood; create type orm.mood as enum ('calm', 'busy')"
    )
    others = [await asyncpg.connect(via_bouncer, statement_cache_size=0) for _ in range(4)]
    try:

        async def busy(conn: asyncpg.Connection) -> list[str]:
            return [await conn.fetchval("select current_setting('jit')") for _ in range(50)]

        async def introspect() -> None:
            for _ in range(10):  # each new connection introspects the enum type
                assert await Db.query_str("select 'calm'::orm.mood") == "calm"
                await luser_db.close()
                luser_db.reset()
                luser_db.init(via_bouncer, pgbouncer=mode, min_size=1, max_size=2)

        *seen, _ = await asyncio.gather(*(busy(c) for c in others), introspect())
        after = await asyncio.gather(*(busy(c) for c in others))
    finally:
        for conn in others:
            await conn.close()
        await direct.execute("drop type orm.mood")
        await direct.close()
    assert {v for values in [*seen, *after] for v in values} == {"on"}


async def test_migrator_from_config_behind_pgbouncer_without_direct_url(
    bouncer_url: str, tmp_path: Path
) -> None:
    import luser_config

    (tmp_path / "default.toml").write_text(
        f'[database]\nurl = "{bouncer_url}"\npgbouncer = "transaction"\n'
    )
    await luser_config.init_config(env="test", config_dir=tmp_path)
    try:
        # `luser migrate` / `luser serve` build the Migrator from config like this: no
        # lock_timeout startup parameter, which PgBouncer would refuse.
        # Connected and read (the session database may hold the service's migrations).
        assert {s.state for s in await Migrator(directory=tmp_path).status()} <= {"missing"}
    finally:
        luser_config.reset_config()


async def test_listen_behind_pgbouncer_without_direct_url_logs_an_error(
    via_bouncer: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    luser_db.init(via_bouncer, pgbouncer=mode, min_size=1, max_size=2)  # no direct_url
    with caplog.at_level("ERROR", logger="luser_db.listen"):
        async with await luser_db.listen("luser_deaf", lambda note: None):
            pass
    assert any("direct_url" in r.getMessage() for r in caplog.records)


COUNTED = "counted"


@pytest_asyncio.fixture(loop_scope="session")
async def counted(bouncer: Running, mode: str, database_url: str) -> AsyncIterator[WireCounter]:
    """Data source ``COUNTED``: a message-counting proxy in front of ``bouncer``.

    A source of its own, not the default one: background jobs that earlier tests' app
    fixtures started keep using the default source, and their statements must not
    reach this proxy's counts (a full run once counted 44 calls for 40)."""
    counter = WireCounter("127.0.0.1", bouncer.port)
    port = await counter.start()
    luser_db.init(
        via_local_port(database_url, port), name=COUNTED, pgbouncer=mode, min_size=0, max_size=2
    )
    try:
        yield counter
    finally:
        await luser_db.close()
        luser_db.reset()
        luser_db.init(database_url, min_size=1, max_size=10)
        await counter.close()


async def test_a_call_with_parameters_is_one_round_trip_only_with_transaction_prepared(
    counted: WireCounter, bouncer: Running, mode: str, orm_schema: str, database_url: str
) -> None:
    # asyncpg waits for the server after each Sync and each Flush. With its statement
    # cache a call is Bind/Execute/Sync: one round trip. Without (any PgBouncer in
    # transaction pooling) each call first sends Parse/Describe/Flush: two.
    sql = "select count(*) from orm.users where age > ?"
    db = Db.use(COUNTED)
    await db.query_int(sql, 0)  # warm: pool open, statement prepared and cached
    database = urlsplit(database_url).path.lstrip("/")
    before = bouncer.stats(database)
    counted.counts.clear()
    calls = 40
    for i in range(calls):
        assert await db.query_int(sql, 1000 + i) == 0
    per_call = {"transaction": 2, "transaction_prepared": 1}[mode]
    assert counted.round_trips == calls * per_call, counted.counts
    after = bouncer.stats(database)
    assert after["query_count"] - before["query_count"] == calls  # PgBouncer: one Sync each
    if mode == "transaction":
        assert counted.counts["P"] >= calls  # the statement is sent again on each call
    else:
        assert counted.counts["P"] == 0
        # PgBouncer's side: only binds of the statement it already knows, prepared on
        # each server it landed on by PgBouncer itself.
        assert after["client_parse_count"] == before["client_parse_count"]
        assert after["bind_count"] - before["bind_count"] == calls


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param("pgbouncer < 1.21", marks=needs_old),
        pytest.param("max_prepared_statements = 0", marks=needs_prepared),
        "no pgbouncer at all",
    ],
)
async def test_transaction_prepared_is_refused_where_names_reach_the_server(
    setup: str, database_url: str
) -> None:
    # Without PgBouncer tracking them, asyncpg's cached statements would be prepared on
    # one server and bound on another: "prepared statement ... does not exist", at
    # random, later. luser_db refuses at pool start instead, naming the setting.
    from luser_db._pgbouncer import PreparedStatementsUntracked

    async def first_query(url: str) -> None:
        await luser_db.close()
        luser_db.reset()
        luser_db.init(url, pgbouncer="transaction_prepared", min_size=1, max_size=2)
        try:
            with pytest.raises(PreparedStatementsUntracked) as info:
                await Db.query_int("select 1")
        finally:
            await luser_db.close()
            luser_db.reset()
            luser_db.init(database_url, min_size=1, max_size=10)
        error = info.value
        assert error.code == "PGBOUNCER_PREPARED_STATEMENTS_UNTRACKED"
        assert error.field == "pgbouncer" and "transaction_prepared" in error.message
        assert "max_prepared_statements" in error.message

    if setup == "no pgbouncer at all":
        await first_query(database_url)
        return
    if setup == "pgbouncer < 1.21":
        binary, extra = pgbouncer.without_prepared_statements(), ""
    else:
        binary, extra = pgbouncer.with_prepared_statements(), "max_prepared_statements = 0\n"
    with run_pgbouncer(database_url, binary, extra=extra) as running:
        await first_query(running.url_for(database_url))
