"""``luser config ...`` commands: show, encrypt, decrypt, rotate-key, gen-key, docs."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from luser_common import AppError

from ._crypto import UNBOUND, KeyRing, generate_key
from ._loader import Loader
from ._paths import flatten
from ._problems import REDACTED
from ._registry import SchemaFactory, use_schema
from ._rotate import rotate_key
from .manager import ConfigBuilder
from .schema import Settings
from .sources.base import merge_layers
from .sources.database import DatabaseSource

__all__ = ["config_group"]

F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)


def _fail(exc: AppError) -> NoReturn:
    _err.print(f"[red]错误[/red] [{exc.code}] {exc.message}", markup=True, highlight=False)
    raise SystemExit(1)


def _env_options(fn: F) -> F:
    fn = click.option(
        "--config-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Config folder (default: $LUSER_CONFIG_DIR or ./config).",
    )(fn)
    return click.option(
        "--env", "env", default=None, help="Environment (default: $LUSER_ENV or development)."
    )(fn)


def _keyring(
    key_file: Path | None, env: str | None = None, config_dir: Path | None = None
) -> KeyRing:
    if key_file is not None:
        return KeyRing.from_file(key_file)
    ring = KeyRing.from_env()
    if ring is None:
        loader = Loader.create(env, config_dir)
        ring = loader.keyring(merge_layers(loader.file_layers()))
    if ring is None:
        from luser_common import EncryptionError

        raise EncryptionError("没有配置密钥: 设置 LUSER_ENCRYPTION_KEY 或使用 --key-file")
    return ring


def _import_schema(spec: str) -> type[Settings] | SchemaFactory:
    """A ``Settings`` subclass, or a schema factory (a function returning one)."""
    module_name, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr or "Settings")
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"找不到配置模式 {spec!r}: {exc}", param_hint="--schema") from exc
    built = found() if not isinstance(found, type) and callable(found) else found
    if not (isinstance(built, type) and issubclass(built, Settings)):
        message = f"{spec!r} 不是 luser_config.Settings 的子类"
        raise click.BadParameter(message, param_hint="--schema")
    return found


@click.group("config")
@click.option(
    "--schema",
    "schema_spec",
    default=None,
    metavar="MODULE:CLASS",
    help="The application's Settings subclass, or a function returning it (default: the "
    "registered schema; an application's own CLI registers it).",
)
def config_group(schema_spec: str | None) -> None:
    """Show, encrypt and rotate configuration."""
    if schema_spec:
        use_schema(_import_schema(schema_spec))


def _display(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@config_group.command("show")
@_env_options
@click.option("--with-db", is_flag=True, help="Include the database config table.")
@click.option("--dsn", default=None, help="Config table DSN (default: database.url).")
@click.option("--table", "table_name", default="app_config", help="Config table name.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def show(
    env: str | None,
    config_dir: Path | None,
    with_db: bool,
    dsn: str | None,
    table_name: str,
    fmt: str,
) -> None:
    """Print the merged config, secrets redacted, with the source of every key."""

    async def build() -> Any:
        builder = ConfigBuilder().install(False).with_db(with_db, dsn=dsn, table=table_name)
        if env:
            builder.env(env)
        if config_dir:
            builder.config_dir(config_dir)
        manager = await builder.build()
        await manager.close()
        return manager.snapshot

    try:
        snap = asyncio.run(build())
    except AppError as exc:
        _fail(exc)
    # Sections the schema does not define cannot be told secret or not: hide their values.
    unknown = set(snap.config.model_extra or {})
    rows = []
    for key, value in flatten(snap.config.model_dump(mode="python")).items():
        hidden = snap.is_sensitive(key) or key.split(".", 1)[0] in unknown
        shown = REDACTED if hidden and value not in ("", None) else value
        rows.append((key, shown, snap.source_of(key)))
    if unknown:
        _err.print(
            f"注意: {', '.join(sorted(unknown))} 不在配置模式 {type(snap.config).__name__} 中,"
            " 其值已隐藏 (通过应用自己的 CLI 运行, 或使用 --schema MODULE:CLASS)"
        )
    if fmt == "json":
        out = {
            k: {"value": v if not hasattr(v, "get_secret_value") else REDACTED, "source": s.short()}
            for k, v, s in rows
        }
        click.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
        return
    table = Table(title=f"luser config (env={snap.config.env})")
    table.add_column("key", style="cyan")
    table.add_column("value")
    table.add_column("source", style="dim")
    for key, value, source in rows:
        text = REDACTED if hasattr(value, "get_secret_value") else _display(value)
        table.add_row(key, text, source.short())
    Console(width=160).print(table)


@config_group.command("encrypt")
@click.option(
    "-k",
    "--key",
    "key_path",
    default=UNBOUND,
    help="Dotted config key the value belongs to, bound into the ciphertext so that it "
    "cannot be copied to another key (recommended). Without it the value works under any key.",
)
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Key ring file (default: $LUSER_ENCRYPTION_KEY / _FILE).",
)
@_env_options
@click.argument("value", required=False)
def encrypt(
    key_path: str,
    key_file: Path | None,
    env: str | None,
    config_dir: Path | None,
    value: str | None,
) -> None:
    """Print ENC(...) for VALUE (read from stdin when omitted), encrypted with the primary
    key of $LUSER_ENCRYPTION_KEY (or _FILE, --key-file, encryption.key_file)."""
    if value is None:
        value = sys.stdin.read().rstrip("\n")
    try:
        click.echo(_keyring(key_file, env, config_dir).encrypt(value, key_path))
    except AppError as exc:
        _fail(exc)


@config_group.command("decrypt")
@click.option("-k", "--key", "key_path", required=True, help="Dotted config key of the value.")
@click.option("--key-file", type=click.Path(path_type=Path), default=None)
@_env_options
@click.argument("token")
def decrypt(
    key_path: str, key_file: Path | None, env: str | None, config_dir: Path | None, token: str
) -> None:
    """Print the plaintext of an ENC(...) TOKEN."""
    try:
        click.echo(_keyring(key_file, env, config_dir).decrypt(token, key_path))
    except AppError as exc:
        _fail(exc)


@config_group.command("gen-key")
@click.option("--kid", default=None, help="Key id (default: random).")
def gen_key(kid: str | None) -> None:
    """Print a new random AES-256 key as kid:base64."""
    try:
        click.echo(generate_key(kid))
    except AppError as exc:
        _fail(exc)


@config_group.command("rotate-key")
@click.option("--new-key", default=None, help="kid:base64 of the new key (default: generate).")
@click.option("--kid", default=None, help="Key id when generating the new key.")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Current key ring file (default: $LUSER_ENCRYPTION_KEY / _FILE).",
)
@_env_options
@click.option("--with-db", is_flag=True, help="Also re-encrypt the database config table.")
@click.option("--dsn", default=None, help="Config table DSN (default: database.url).")
@click.option("--table", "table_name", default="app_config", help="Config table name.")
@click.option("--dry-run", is_flag=True, help="Check everything, write nothing.")
def rotate(
    new_key: str | None,
    kid: str | None,
    key_file: Path | None,
    env: str | None,
    config_dir: Path | None,
    with_db: bool,
    dsn: str | None,
    table_name: str,
    dry_run: bool,
) -> None:
    """Re-encrypt every ENC(...) value in the config folder (and table) under a new key."""
    try:
        old = _keyring(key_file, env, config_dir)
        new = KeyRing.parse(new_key or generate_key(kid), "--new-key")
        loader = Loader.create(env, config_dir, key=old)
        db = None
        if with_db:
            from .manager import _database_url

            url = dsn or _database_url(loader, loader.file_layers())
            db = DatabaseSource(url, loader.env, table_name)
        report = asyncio.run(rotate_key(loader.config_dir, old, new, db=db, dry_run=dry_run))
    except AppError as exc:
        _fail(exc)
    table = Table(title="密钥轮换" + (" (dry run)" if dry_run else ""))
    table.add_column("where")
    table.add_column("values", justify="right")
    for path, count in report.files.items():
        table.add_row(path, str(count))
    if with_db:
        table.add_row(f"database {table_name}", str(report.db_rows))
    _err.print(table)
    _err.print(
        f"新的主密钥: {report.new_kid}. 更新 LUSER_ENCRYPTION_KEY 为下面一行 "
        "(旧密钥保留在后面, 确认无误后再移除):"
    )
    click.echo(old.with_primary(new).export())


@config_group.command("docs")
@click.option("--output", type=click.Path(path_type=Path), default=Path("docs/config.md"))
@click.option("--check", is_flag=True, help="Exit 1 when the file is out of date.")
def docs(output: Path, check: bool) -> None:
    """Regenerate the key reference in docs/config.md from the schema (the registered one:
    run through the application's CLI, or pass --schema, to include its sections)."""
    from ._docs import docs_are_current, update_docs

    if check:
        if not docs_are_current(output):
            _err.print(f"{output} 已过期: 运行 luser config docs")
            raise SystemExit(1)
        return
    changed = update_docs(output)
    _err.print(f"{output}: {'已更新' if changed else '无变化'}")
