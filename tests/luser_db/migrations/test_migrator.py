"""The Migrator against a real PostgreSQL: apply, roll back, failures, locks, checksums."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import asyncpg
import pytest
from rich.console import Console

from luser_common import BusinessError, ConfigError, Conflict, DatabaseError, TimeoutError
from luser_db.migrations import SCHEMA_TABLE
from luser_db.migrations.migrator import LOCK_KEY


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _tables(url: str) -> set[str]:
    rows = await _fetch(url, "select tablename from pg_tables where schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def _versions(url: str) -> list[int]:
    rows = await _fetch(url, f"select version from {SCHEMA_TABLE} order by version")
    return [r["version"] for r in rows]


@pytest.fixture
def two_tables(write) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    write("0001_a.down.sql", "drop table a;")
    write("0002_b.up.sql", "create table b (id int);")
    write("0002_b.down.sql", "drop table b;")


async def test_apply_roll_back_reapply(two_tables, make_migrator, fresh_url: str) -> None:
    m = make_migrator()
    assert [x.version for x in await m.up()] == [1, 2]
    assert {"a", "b", SCHEMA_TABLE} <= await _tables(fresh_url)
    row = (await _fetch(fresh_url, f"select * from {SCHEMA_TABLE} where version = 1"))[0]
    assert row["name"] == "a" and len(row["checksum"]) == 64
    assert row["duration_ms"] >= 0 and "@" in row["applied_by"] and row["applied_at"] is not None

    assert [x.version for x in await m.down()] == [2]
    assert "b" not in await _tables(fresh_url)
    assert await _versions(fresh_url) == [1]

    assert [x.version for x in await m.down(5)] == [1]
    assert await _versions(fresh_url) == []

    assert [x.version for x in await m.up()] == [1, 2]
    assert await m.up() == []
    assert [s.state for s in await m.status()] == ["applied", "applied"]


async def test_up_to_version(two_tables, make_migrator, fresh_url: str) -> None:
    m = make_migrator()
    await m.up(to=1)
    assert [(s.version, s.state) for s in await m.status()] == [(1, "applied"), (2, "pending")]


async def test_redo(two_tables, make_migrator, fresh_url: str) -> None:
    m = make_migrator()
    await m.up()
    await _fetch(fresh_url, "insert into b values (1)")
    redone = await m.redo()
    assert redone is not None and redone.version == 2
    assert await _fetch(fresh_url, "select * from b") == []
    assert await _versions(fresh_url) == [1, 2]


async def test_failing_migration_leaves_no_trace(write, make_migrator, fresh_url: str) -> None:
    write("0001_ok.up.sql", "create table ok (id int);")
    write("0002_bad.up.sql", "create table half (id int);\ninsert into nowhere values (1);")
    m = make_migrator()
    with pytest.raises(DatabaseError, match=r"0002_bad\.up\.sql.*第 2 行.*nowhere") as info:
        await m.up()
    assert isinstance(info.value.__cause__, asyncpg.PostgresError)
    assert "half" not in await _tables(fresh_url)
    assert await _versions(fresh_url) == [1]
    assert [s.state for s in await m.status()] == ["applied", "pending"]


async def test_no_transaction_migration(write, make_migrator, fresh_url: str) -> None:
    write("0001_t.up.sql", "create table t (email text); insert into t values ('a;b');")
    write(
        "0002_idx.up.sql",
        "-- migrate:no-transaction\n"
        "create index concurrently t_email_idx on t (email);\n"
        "create index concurrently t_email2_idx on t (lower(email));\n",
    )
    write("0002_idx.down.sql", "-- migrate:no-transaction\ndrop index concurrently t_email_idx;")
    m = make_migrator()
    await m.up()
    indexes = {r["indexname"] for r in await _fetch(fresh_url, "select indexname from pg_indexes")}
    assert {"t_email_idx", "t_email2_idx"} <= indexes
    assert await _versions(fresh_url) == [1, 2]
    await m.down()
    assert await _versions(fresh_url) == [1]


async def test_concurrently_inside_a_transaction_fails_clearly(write, make_migrator) -> None:
    write("0001_t.up.sql", "create table t (id int);\ncreate index concurrently t_i on t (id);")
    with pytest.raises(DatabaseError, match=r"0001_t\.up\.sql"):
        await make_migrator().up()


async def test_concurrent_runs_apply_each_migration_once(
    write, make_migrator, fresh_url: str
) -> None:
    write("0001_runs.up.sql", "create table runs (version int);")
    # pg_sleep keeps the first runner busy so the others really overlap with it.
    write("0002_two.up.sql", "insert into runs values (2); select pg_sleep(0.3);")
    write("0003_three.up.sql", "insert into runs values (3);")
    results = await asyncio.gather(*(make_migrator().up() for _ in range(3)))
    assert sorted(len(r) for r in results) == [0, 0, 3]
    rows = await _fetch(fresh_url, "select version from runs order by version")
    assert [r["version"] for r in rows] == [2, 3]
    assert await _versions(fresh_url) == [1, 2, 3]


async def test_lock_wait_gives_up_clearly(write, make_migrator, fresh_url: str) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    holder = await asyncpg.connect(fresh_url)
    try:
        await holder.execute("select pg_advisory_lock($1)", LOCK_KEY)
        with pytest.raises(Conflict, match="另一个迁移进程"):
            await make_migrator(lock_wait=0.3).up()
    finally:
        await holder.close()
    assert "a" not in await _tables(fresh_url)


async def test_lock_timeout_fails_fast(write, make_migrator, fresh_url: str) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    await make_migrator().up()
    write("0002_col.up.sql", "alter table a add column b int;")
    blocker = await asyncpg.connect(fresh_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("lock table a in access exclusive mode")
        with pytest.raises(TimeoutError, match="lock_timeout"):
            await make_migrator(lock_timeout=0.2).up()
        await tx.rollback()
    finally:
        await blocker.close()
    assert await _versions(fresh_url) == [1]


async def test_changed_file_stops_up_until_repair(write, make_migrator, fresh_url: str) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    m = make_migrator()
    await m.up()
    write("0001_a.up.sql", "create table a (id bigint);")
    write("0002_b.up.sql", "create table b (id int);")
    with pytest.raises(Conflict, match=r"0001_a\.up\.sql.*repair"):
        await m.up()
    assert [s.state for s in await m.status()] == ["changed", "pending"]
    assert "b" not in await _tables(fresh_url)

    fixed = await m.repair()
    assert [s.version for s in fixed] == [1]
    assert [s.state for s in await m.status()] == ["applied", "pending"]
    await m.up()
    assert await _versions(fresh_url) == [1, 2]


async def test_missing_file_is_reported(
    two_tables, mdir: Path, make_migrator, fresh_url: str
) -> None:
    m = make_migrator()
    await m.up()
    (mdir / "0002_b.up.sql").unlink()
    (mdir / "0002_b.down.sql").unlink()
    statuses = await m.status()
    assert [(s.version, s.name, s.state) for s in statuses] == [
        (1, "a", "applied"),
        (2, "b", "missing"),
    ]
    assert await m.up() == []  # a warning, not a failure
    with pytest.raises(ConfigError, match="找不到文件"):
        await m.down()
    assert [s.version for s in await m.repair(forget_missing=True)] == [2]
    assert await _versions(fresh_url) == [1]


async def test_down_needs_a_down_part(write, make_migrator) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    m = make_migrator()
    await m.up()
    with pytest.raises(BusinessError, match="没有 down"):
        await m.down()


async def test_dry_run_changes_nothing(two_tables, make_migrator, fresh_url: str) -> None:
    out = io.StringIO()
    m = make_migrator(console=Console(file=out, width=200))
    planned = await m.up(dry_run=True)
    assert [x.version for x in planned] == [1, 2]
    assert "create table a (id int);" in out.getvalue()
    assert "-- 0002_b.up.sql (transaction)" in out.getvalue()
    assert await _tables(fresh_url) == set()

    await m.up()
    out.truncate(0)
    assert [x.version for x in await m.down(2, dry_run=True)] == [2, 1]
    assert "drop table b;" in out.getvalue()
    assert await _versions(fresh_url) == [1, 2]


async def test_up_lints_as_warnings_and_strict_refuses(
    write, make_migrator, fresh_url: str
) -> None:
    write("0001_a.up.sql", "create table a (id int);")
    out = io.StringIO()
    m = make_migrator(console=Console(file=out, width=200))
    await m.up()
    write("0002_idx.up.sql", "create index a_id on a (id);")
    with pytest.raises(BusinessError, match="index-without-concurrently"):
        await m.up(strict=True)
    assert await _versions(fresh_url) == [1]
    await m.up()
    assert "警告: 0002_idx.up.sql:1: [index-without-concurrently]" in out.getvalue()
    assert await _versions(fresh_url) == [1, 2]


async def test_reset_drops_everything_and_migrates(
    two_tables, make_migrator, fresh_url: str
) -> None:
    m = make_migrator()
    await m.up()
    await _fetch(fresh_url, "create table stray (id int)")
    applied = await m.reset()
    assert [x.version for x in applied] == [1, 2]
    assert await _tables(fresh_url) == {"a", "b", SCHEMA_TABLE}


async def test_unreachable_database_is_a_luser_error(mdir: Path) -> None:
    from luser_common import DatabaseUnavailable
    from luser_db.migrations import Migrator

    m = Migrator(
        "postgresql://nobody:secret@127.0.0.1:1/x",
        directory=mdir,
        lock_timeout=1,
        statement_timeout=0,
    )
    with pytest.raises(DatabaseUnavailable) as info:
        await m.status()
    assert "secret" not in info.value.message


async def test_the_apps_own_migrations_apply_and_pass_lint(make_migrator, tmp_path: Path) -> None:
    import shutil

    from luser_db.migrations import lint_migrations, load_migrations

    # A snapshot, so files edited while the test runs cannot race it.
    root = shutil.copytree(
        Path(__file__).resolve().parents[3] / "app" / "migrations", tmp_path / "app"
    )
    assert lint_migrations(load_migrations(root)) == []
    m = make_migrator(directory=root)
    applied = await m.up()
    assert applied and applied[0].label == "0001_users"
    assert all(s.state == "applied" for s in await m.status())
