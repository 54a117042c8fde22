"""Apply and roll back SQL migrations against one PostgreSQL database.

One dedicated connection per run (advisory locks belong to a session, so a
pooled connection would not do). Every run that changes anything holds a
session-level advisory lock and reads the applied set only after taking it,
so two concurrent runners never apply the same migration twice.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from luser_common import BusinessError, ConfigError, Conflict, ValidationError

from ._errors import connect_error, statement_error
from ._scan import split_statements
from .files import Migration, Section, load_migrations
from .lint import LintIssue, lint_migrations

__all__ = ["SCHEMA_TABLE", "AppliedMigration", "MigrationState", "MigrationStatus", "Migrator"]

SCHEMA_TABLE = "luser_schema_migrations"
# Any fixed bigint works; this one spells "luser_mg" so it is easy to spot in pg_locks.
LOCK_KEY = int.from_bytes(b"luser_mg", "big") & 0x7FFF_FFFF_FFFF_FFFF

MigrationState = Literal["applied", "pending", "changed", "missing"]

_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (
    version     bigint      PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL,
    applied_by  text        NOT NULL
)"""


@dataclass(frozen=True)
class AppliedMigration:
    """A row of the schema table."""

    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int
    applied_by: str


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    state: MigrationState
    migration: Migration | None
    applied: AppliedMigration | None

    @property
    def label(self) -> str:
        return self.migration.label if self.migration else f"{self.version:04d}_{self.name}"


class Migrator:
    """Python API behind ``luser migrate``.

    Anything left as None comes from luser_config's ``database`` section:
    ``url`` from the data source (embedded PostgreSQL for the primary),
    ``directory`` from ``migrations_dir``, the timeouts from
    ``migration_lock_timeout`` / ``migration_statement_timeout`` (seconds).
    ``lock_wait`` is how long to wait for another runner's advisory lock,
    ``connect_timeout`` how long to wait for the connection (seconds).

    The data source's ``direct_url`` is used when set (PostgreSQL itself, not
    PgBouncer). Through PgBouncer in transaction mode (``pgbouncer``: None = from the
    data source's config when no ``direct_url`` is set) nothing session-level is
    used: the limits are ``SET LOCAL`` per migration (statements outside a
    transaction, such as ``CREATE INDEX CONCURRENTLY``, run without them), and the
    advisory lock is a transaction-level one held open on a second connection.
    Progress and warnings go to ``console`` when one is given.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        directory: str | Path | None = None,
        data_source: str | None = None,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
        lock_wait: float = 300.0,
        connect_timeout: float = 10.0,
        console: Console | None = None,
        pgbouncer: bool | None = None,
    ) -> None:
        self._url = url
        self._pgbouncer = pgbouncer
        self._bounced = False  # the connection in use goes through PgBouncer
        self._told_no_limits = False
        self._lock_url = ""
        self._data_source = data_source
        if directory is None or lock_timeout is None or statement_timeout is None:
            from .._datasource import database_config

            db = database_config()
            directory = db.migrations_dir if directory is None else directory
            lock_timeout = db.migration_lock_timeout if lock_timeout is None else lock_timeout
            if statement_timeout is None:
                statement_timeout = db.migration_statement_timeout
        self.directory = Path(directory)
        self.lock_timeout = float(lock_timeout)
        self.statement_timeout = float(statement_timeout)
        self.lock_wait = lock_wait
        self.connect_timeout = connect_timeout
        self.console = console

    # -- reading -------------------------------------------------------------------

    def migrations(self) -> list[Migration]:
        return load_migrations(self.directory)

    def lint(self, migrations: Sequence[Migration] | None = None) -> list[LintIssue]:
        return lint_migrations(self.migrations() if migrations is None else migrations)

    async def status(self) -> list[MigrationStatus]:
        """Every known version in order: applied, changed, pending or missing (no file)."""
        files = self.migrations()
        async with self._connect() as conn:
            applied = await _read_applied(conn)
        return _statuses(files, applied)

    # -- changing ------------------------------------------------------------------

    async def up(
        self, to: int | None = None, *, dry_run: bool = False, strict: bool = False
    ) -> list[Migration]:
        """Apply pending migrations (up to version ``to``); returns those applied (or planned)."""
        files = self.migrations()
        async with self._connect() as conn, self._locked(conn, dry_run):
            return await self._up(conn, files, to, dry_run=dry_run, strict=strict)

    async def down(self, steps: int = 1, *, dry_run: bool = False) -> list[Migration]:
        """Roll back the last ``steps`` applied migrations, newest first."""
        if steps < 0:
            raise ValidationError("回滚步数不能为负数", field="steps")
        files = self.migrations()
        async with self._connect() as conn, self._locked(conn, dry_run):
            applied = await _read_applied(conn)
            targets = _rollback_targets(files, sorted(applied, reverse=True)[:steps])
            for migration in targets:
                await self._run(conn, migration, "down", dry_run=dry_run)
            return targets

    async def redo(self, *, dry_run: bool = False) -> Migration | None:
        """Roll back the newest applied migration and apply it again from its file."""
        files = self.migrations()
        async with self._connect() as conn, self._locked(conn, dry_run):
            applied = await _read_applied(conn)
            if not applied:
                return None
            (migration,) = _rollback_targets(files, [max(applied)])
            await self._run(conn, migration, "down", dry_run=dry_run)
            await self._run(conn, migration, "up", dry_run=dry_run)
            return migration

    async def repair(self, *, forget_missing: bool = False) -> list[MigrationStatus]:
        """Accept edited files: record their current checksum (and optionally drop missing rows)."""
        files = self.migrations()
        async with self._connect() as conn, self._locked(conn, False):
            fixed = [
                s
                for s in _statuses(files, await _read_applied(conn))
                if s.state == "changed" or (forget_missing and s.state == "missing")
            ]
            for item in fixed:
                if item.migration is None:
                    await conn.execute(
                        f"DELETE FROM {SCHEMA_TABLE} WHERE version = $1", item.version
                    )
                else:
                    await conn.execute(
                        f"UPDATE {SCHEMA_TABLE} SET checksum = $2, name = $3 WHERE version = $1",
                        item.version,
                        item.migration.checksum,
                        item.migration.name,
                    )
            return fixed

    async def reset(self, *, migrate: bool = True) -> list[Migration]:
        """Drop and recreate the ``public`` schema (everything in it), then apply all migrations."""
        files = self.migrations() if migrate else []
        async with self._connect() as conn, self._locked(conn, False):
            try:
                # The GRANT restores PostgreSQL 15's default for a new public schema.
                await conn.execute(
                    "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"
                    " GRANT USAGE ON SCHEMA public TO PUBLIC"
                )
                await conn.execute(_CREATE_TABLE)
            except Exception as exc:
                raise statement_error(exc, "reset") from exc
            self._say("已删除并重建 public schema", "yellow")
            return await self._up(conn, files, None, dry_run=False, strict=False) if migrate else []

    # -- internals -----------------------------------------------------------------

    async def _up(
        self,
        conn: asyncpg.Connection,
        files: list[Migration],
        to: int | None,
        *,
        dry_run: bool,
        strict: bool,
    ) -> list[Migration]:
        statuses = _statuses(files, await _read_applied(conn))
        _refuse_changed(statuses)
        for item in statuses:
            if item.state == "missing":
                self._say(f"警告: 已应用的迁移 {item.label} 找不到文件", "yellow")
        pending = [
            s.migration
            for s in statuses
            if s.state == "pending" and s.migration and (to is None or s.version <= to)
        ]
        self._check_lint(pending, strict)
        if not pending:
            self._say("没有待应用的迁移")
            return []
        if dry_run or self.console is None or len(pending) == 1:
            for migration in pending:
                await self._run(conn, migration, "up", dry_run=dry_run)
            return pending
        await self._up_with_progress(conn, pending)
        return pending

    async def _up_with_progress(self, conn: asyncpg.Connection, pending: list[Migration]) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task("迁移中", total=len(pending))
            for migration in pending:
                progress.update(task, description=f"迁移 {migration.label}")
                await self._run(conn, migration, "up", dry_run=False)
                progress.advance(task)

    def _check_lint(self, pending: list[Migration], strict: bool) -> None:
        issues = lint_migrations(pending)
        for issue in issues:
            self._say(f"警告: {issue}", "yellow")
        if issues and strict:
            raise BusinessError(f"迁移安全检查未通过 ({len(issues)} 处, --strict): {issues[0]}")

    async def _run(
        self, conn: asyncpg.Connection, migration: Migration, direction: str, *, dry_run: bool
    ) -> None:
        section = migration.up if direction == "up" else migration.down
        assert section is not None  # _rollback_targets guarantees a down part
        single_file = direction == "down" and section.path == migration.up.path
        label = section.path.name + (" [down]" if single_file else "")
        if dry_run:
            self._print_sql(label, section)
            return
        started = time.perf_counter()
        if section.transactional:
            async with conn.transaction():
                await self._execute(conn, section, label)
                await self._record(conn, migration, direction, started)
        else:
            await self._execute(conn, section, label)
            await self._record(conn, migration, direction, started)
        elapsed = round((time.perf_counter() - started) * 1000)
        arrow = "↑" if direction == "up" else "↓"
        self._say(f"{arrow} {migration.label} ({elapsed} ms)", "green")

    async def _execute(self, conn: asyncpg.Connection, section: Section, label: str) -> None:
        if section.empty:
            return
        limits = (self.lock_timeout, self.statement_timeout)
        if section.transactional:
            try:
                if self._bounced:  # no session settings through PgBouncer: per transaction
                    await conn.execute(self._local_limits())
                await conn.execute(section.sql)
            except Exception as exc:
                raise statement_error(exc, label, section.sql, limits=limits) from exc
            return
        # Outside a transaction each statement must go alone: a multi-statement
        # query string is an implicit transaction, which CONCURRENTLY refuses.
        if self._bounced and not self._told_no_limits:
            self._told_no_limits = True
            self._say(
                f"警告: {label} 不在事务中, 经 PgBouncer 执行时无法设置 lock_timeout /"
                " statement_timeout; 请配置 database.direct_url",
                "yellow",
            )
        for stmt in split_statements(section.sql):
            try:
                await conn.execute(stmt.text)
            except Exception as exc:
                raise statement_error(
                    exc, label, stmt.text, line_offset=stmt.line - 1, limits=limits
                ) from exc

    async def _record(
        self, conn: asyncpg.Connection, migration: Migration, direction: str, started: float
    ) -> None:
        try:
            if direction == "down":
                await conn.execute(
                    f"DELETE FROM {SCHEMA_TABLE} WHERE version = $1", migration.version
                )
                return
            await conn.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version, name, checksum, duration_ms, applied_by)"
                " VALUES ($1, $2, $3, $4, $5)",
                migration.version,
                migration.name,
                migration.checksum,
                round((time.perf_counter() - started) * 1000),
                _applied_by(),
            )
        except asyncpg.PostgresError as exc:
            raise statement_error(exc, SCHEMA_TABLE) from exc

    def _print_sql(self, label: str, section: Section) -> None:
        if self.console is None:
            return
        mode = "transaction" if section.transactional else "no transaction"
        self.console.print(f"-- {label} ({mode})", markup=False, highlight=False)
        self.console.print(
            section.sql.strip() + "\n", markup=False, highlight=False, soft_wrap=True
        )

    def _say(self, message: str, style: str | None = None) -> None:
        # markup=False: file names and lint codes contain [brackets] rich would eat.
        if self.console is not None:
            self.console.print(message, style=style, markup=False, highlight=False)

    def _local_limits(self) -> str:
        return (
            f"SET LOCAL lock_timeout = '{round(self.lock_timeout * 1000)}ms';"
            f" SET LOCAL statement_timeout = '{round(self.statement_timeout * 1000)}ms'"
        )

    def _target(self) -> tuple[str, bool]:
        """The URL to migrate through, and whether it goes through PgBouncer."""
        if self._url is not None:
            return self._url, bool(self._pgbouncer)
        from .._datasource import data_source_config, resolve_url

        source = data_source_config(self._data_source)
        direct = source.direct_url.get_secret_value() if source.direct_url else None
        bounced = bool(source.pgbouncer) and not direct
        if self._pgbouncer is not None:
            bounced = self._pgbouncer
        return direct or resolve_url(self._data_source), bounced

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[asyncpg.Connection]:
        url, self._bounced = self._target()
        self._lock_url = url
        settings = {"application_name": "luser-migrate"}
        if not self._bounced:  # PgBouncer refuses these startup parameters
            settings["lock_timeout"] = f"{round(self.lock_timeout * 1000)}ms"
            settings["statement_timeout"] = f"{round(self.statement_timeout * 1000)}ms"
        try:
            # No statement cache: DDL invalidates cached plans mid-run.
            conn = await asyncpg.connect(
                url, statement_cache_size=0, server_settings=settings, timeout=self.connect_timeout
            )
        except Exception as exc:
            raise connect_error(exc, url) from exc
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def _locked(self, conn: asyncpg.Connection, dry_run: bool) -> AsyncIterator[None]:
        """Hold the migration advisory lock (a dry run only reads, so it skips it)."""
        if dry_run:
            yield
            return
        if self._bounced:
            async with self._xact_locked():
                await conn.execute(_CREATE_TABLE)
                yield
            return
        await self._acquire(conn)
        try:
            await conn.execute(_CREATE_TABLE)
            yield
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)

    @asynccontextmanager
    async def _xact_locked(self) -> AsyncIterator[None]:
        """The advisory lock through PgBouncer: a session lock would stay on a shared
        server, so a transaction-level one is held by an open transaction on a second
        connection (PgBouncer keeps that server for it) until the run ends."""
        try:
            lock_conn = await asyncpg.connect(
                self._lock_url, statement_cache_size=0, timeout=self.connect_timeout
            )
        except Exception as exc:
            raise connect_error(exc, self._lock_url) from exc
        try:
            async with lock_conn.transaction():
                await self._acquire(lock_conn, "SELECT pg_try_advisory_xact_lock($1)")
                # A simple-protocol statement drops the unnamed portal and with it the
                # snapshot (xmin) it kept: CREATE INDEX CONCURRENTLY waits for those.
                await lock_conn.execute("SELECT 1")
                yield
        finally:
            await lock_conn.close()

    async def _acquire(
        self, conn: asyncpg.Connection, sql: str = "SELECT pg_try_advisory_lock($1)"
    ) -> None:
        # try-lock in a loop rather than pg_advisory_lock: the wait gets its own
        # limit and a message, independent of the DDL lock_timeout.
        deadline = time.monotonic() + self.lock_wait
        told = False
        while not await conn.fetchval(sql, LOCK_KEY):
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"等待迁移锁超过 {self.lock_wait:g} 秒: 另一个迁移进程仍在运行",
                    retryable=True,
                )
            if not told:
                self._say("另一个迁移进程正在运行, 等待它完成…", "yellow")
                told = True
            await asyncio.sleep(0.2)


async def _read_applied(conn: asyncpg.Connection) -> dict[int, AppliedMigration]:
    if await conn.fetchval("SELECT to_regclass($1)", SCHEMA_TABLE) is None:
        return {}
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum, applied_at, duration_ms, applied_by"
            f" FROM {SCHEMA_TABLE}"
        )
    except asyncpg.PostgresError as exc:
        raise statement_error(exc, SCHEMA_TABLE) from exc
    return {row["version"]: AppliedMigration(**dict(row)) for row in rows}


def _statuses(
    files: list[Migration], applied: dict[int, AppliedMigration]
) -> list[MigrationStatus]:
    by_version = {m.version: m for m in files}
    out: list[MigrationStatus] = []
    for version in sorted(by_version.keys() | applied.keys()):
        migration, row = by_version.get(version), applied.get(version)
        state: MigrationState
        if row is None:
            state = "pending"
        elif migration is None:
            state = "missing"
        else:
            state = "applied" if row.checksum == migration.checksum else "changed"
        name = migration.name if migration else row.name if row else ""
        out.append(MigrationStatus(version, name, state, migration, row))
    return out


def _refuse_changed(statuses: list[MigrationStatus]) -> None:
    changed = [s for s in statuses if s.state == "changed"]
    if changed:
        first = changed[0].migration
        assert first is not None
        more = f" 等 {len(changed)} 个文件" if len(changed) > 1 else ""
        raise Conflict(
            f"已应用的迁移文件 {first.path.name}{more} 被修改过 (校验和不一致): "
            "请恢复原文件, 或确认无误后运行 luser migrate repair"
        )


def _rollback_targets(files: list[Migration], versions: list[int]) -> list[Migration]:
    by_version = {m.version: m for m in files}
    targets: list[Migration] = []
    for version in versions:
        migration = by_version.get(version)
        if migration is None:
            raise ConfigError(f"已应用的迁移 {version} 找不到文件, 无法回滚")
        if migration.down is None:
            raise BusinessError(f"迁移 {migration.label} 没有 down 部分, 无法回滚")
        targets.append(migration)
    return targets


def _applied_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
