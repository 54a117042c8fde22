"""The ``luser`` command line: one entry point, subcommands from every package.

The library's commands (``config``, ``migrate``, ``db``) need only the base install; the
service's (``serve``, ``user``, ``payments``) need ``pip install 'luser[service]'`` and say
so when it is missing. Service modules are therefore imported inside those commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

import luser_db
from app.config_checks import check_production, uses_embedded
from app.files import CONFIG_DIR, MIGRATIONS_DIR
from app.settings import AppConfig
from luser_common import ConfigError
from luser_config.cli import config_group
from luser_db import start_embedded, stop_embedded
from luser_db.cli import cli_errors, db_group, env_option, migrate_group, run_migrations

if TYPE_CHECKING:
    import uvicorn

# Top-level modules of the ``service`` extra that the service cannot start without.
SERVICE_MODULES = ("starlette", "uvicorn", "jwt", "argon2", "httpx", "prometheus_client")
SERVICE_HINT = "pip install 'luser[service]'"
# Service command groups defined elsewhere in the app, imported when first used.
_SERVICE_GROUPS = {
    "payments": ("app.commerce.cli", "payments_group", "Payments: reconcile pending orders."),
    "users": ("app.accounts.cli", "users_group", "Users: search, show, disable, enable."),
    "plans": ("app.commerce.plans_cli", "plans_group", "Plans: list, create, update."),
    "videos": ("app.catalog.cli", "videos_group", "Videos: list, publish, delete, VOD jobs."),
    "channels": ("app.open_api.cli", "channels_group", "Open API upstream channels."),
    "prices": ("app.open_api.cli", "prices_group", "Open API prices."),
    "tokens": ("app.open_api.cli", "tokens_group", "Open API tokens."),
    "wallet": ("app.open_api.cli", "wallet_group", "Open API wallets: balance, top-up."),
}


def missing_service_modules() -> list[str]:
    """The service packages that are not installed (empty when ``luser[service]`` is)."""
    return [name for name in SERVICE_MODULES if importlib.util.find_spec(name) is None]


def require_service() -> None:
    """Fail with the install command when the service's packages are missing."""
    missing = missing_service_modules()
    if missing:
        raise ConfigError(
            f"此命令需要服务端依赖 (缺少 {', '.join(missing)}), 请安装: {SERVICE_HINT}"
        )


class _LuserGroup(click.Group):
    """Adds the service groups lazily, as stubs that explain the install when it is missing."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_SERVICE_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _SERVICE_GROUPS or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, attr, summary = _SERVICE_GROUPS[cmd_name]
        if missing_service_modules():
            return _needs_service(cmd_name, summary)
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


def _needs_service(name: str, summary: str) -> click.Command:
    @cli_errors
    def fail(args: tuple[str, ...]) -> None:
        require_service()

    return click.Command(
        name,
        callback=fail,
        params=[click.Argument(["args"], nargs=-1)],
        help=f"{summary} Needs {SERVICE_HINT}.",
        context_settings={"ignore_unknown_options": True},
    )


def _is_project(folder: Path) -> bool:
    """A folder with its own config/ or migrations/ (or LUSER_CONFIG_DIR naming one)."""
    if os.environ.get("LUSER_CONFIG_DIR", "").strip():
        return True
    return (folder / "config").is_dir() or (folder / "migrations").is_dir()


def use_service_files(ctx: click.Context) -> None:
    """Outside a project, ``luser`` is the installed service: its packaged config and migrations.

    Set through the environment so that uvicorn's worker processes see the same folders;
    undone when the command ends (for in-process callers such as click's test runner).
    A library-only install (no service extra) keeps the plain library defaults.
    """
    if _is_project(Path.cwd()) or missing_service_modules():
        return
    defaults = {
        "LUSER_CONFIG_DIR": str(CONFIG_DIR),
        "LUSER__DATABASE__MIGRATIONS_DIR": str(MIGRATIONS_DIR),
    }
    saved = {name: os.environ.get(name) for name in defaults}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    ctx.call_on_close(lambda: _restore(saved))


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@click.group(cls=_LuserGroup)
@click.version_option(package_name="luser")
@env_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """luser: async ActiveRecord toolkit for PostgreSQL and the video-subscription service."""
    use_service_files(ctx)


@main.command()
@click.option("--host", default=None, help="Bind address (default: server.host from config).")
@click.option("--port", default=None, type=int, help="Port (default: server.port from config).")
@click.option("--workers", default=None, type=int, help="Worker processes (default: config).")
@click.option("--no-migrate", is_flag=True, help="Do not apply pending migrations first.")
@click.option("--no-seed", is_flag=True, help="Do not insert demo data (development only anyway).")
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies trusted for X-Forwarded-For/-Proto, comma-separated "
    "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1).",
)
@env_option
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    no_migrate: bool,
    no_seed: bool,
    forwarded_allow_ips: str | None,
) -> None:
    """Apply pending migrations (and seed demo data in development), then run the service.

    Without ``database.url`` it starts the embedded PostgreSQL and stops it again when
    the service stops (SIGTERM or Ctrl-C), unless other processes still use it. Exits
    non-zero when the service fails to start, whatever the number of workers.
    """
    cfg = _checked_config()
    import uvicorn

    # A signal arriving now, or uvicorn re-raising it after its graceful shutdown, must
    # unwind through the finally below rather than kill the process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded = uses_embedded(cfg)
    n_workers = workers or cfg.server.workers
    own_metrics_dir = _multiprocess_metrics(n_workers)
    try:
        if embedded:
            _start_embedded(cfg.database.embedded_data_dir)
        if not no_migrate:
            _migrate_first()
        _check_budget(cfg, n_workers)
        if cfg.env == "development" and not no_seed:
            _seed_first()
        # The app loads its config again in the worker: it must know where it listens
        # (the sandbox's notifications are sent there).
        os.environ.update({"LUSER__SERVER__PORT": str(port)} if port else {})
        os.environ.update({"LUSER__SERVER__HOST": host} if host else {})
        status = run_uvicorn(
            uvicorn.Config(
                "app.main:create_app",
                factory=True,
                host=host or cfg.server.host,
                port=port or cfg.server.port,
                workers=n_workers,
                log_level=cfg.server.log_level,
                forwarded_allow_ips=forwarded_allow_ips,
            )
        )
    finally:
        if embedded:
            stop_embedded(cfg.database.embedded_data_dir)
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    if status:
        raise click.exceptions.Exit(status)


def _multiprocess_metrics(workers: int) -> str | None:
    """With several workers, a shared Prometheus directory (``PROMETHEUS_MULTIPROC_DIR``)
    so that ``/metrics`` adds up every worker (app.open_api.metrics). An operator's own
    directory is emptied of a previous run's files; else a temporary one is made (and
    returned, to be removed at exit). Set before the workers start: they read it when
    prometheus_client is imported."""
    if workers < 2:
        return None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="luser-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # a requested stop; uvicorn has already drained the requests


def run_uvicorn(config: uvicorn.Config) -> int:
    """Serve until stopped; 0, or uvicorn's STARTUP_FAILURE (3) when the app did not start.

    ``uvicorn.run`` exits 3 only with one worker: with several it returns normally after
    a worker failed to start, so the supervisor is run here and its workers inspected.
    """
    import uvicorn
    from uvicorn.main import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    if config.workers > 1:
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
        return STARTUP_FAILURE if failed else 0
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


@cli_errors
def _checked_config() -> AppConfig:
    """The config to serve with, refused early when production must not run with it."""
    from luser_config import load_config

    require_service()
    cfg = load_config(schema=AppConfig)
    check_production(cfg)
    return cfg


def _check_budget(cfg: AppConfig, workers: int) -> None:
    """Warn (never refuse) when the workers' connections cannot fit in the server."""
    import asyncio

    from app.connection_budget import check_connection_budget

    async def check() -> None:
        try:
            await check_connection_budget(
                workers, cfg.database.max_connections, pgbouncer=bool(cfg.database.pgbouncer)
            )
        except Exception as exc:  # the service's own start reports an unreachable database
            logging.getLogger("luser.budget").warning("connection budget not checked: %r", exc)
        finally:
            await luser_db.close()

    asyncio.run(check())


@cli_errors
def _start_embedded(data_dir: str) -> None:
    start_embedded(data_dir)


@cli_errors
def _migrate_first() -> None:
    import asyncio

    asyncio.run(run_migrations())


@cli_errors
def _seed_first() -> None:
    import asyncio

    from app.seed import seed_demo

    if asyncio.run(seed_demo()):
        click.echo("已写入演示数据 (开发环境)")


@click.group("user")
def user_group() -> None:
    """Manage service accounts."""


@user_group.command("create-admin")
@click.argument("account")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The admin's password (prompted when omitted).",
)
@click.option("--nickname", default="管理员", show_default=True)
@env_option
@cli_errors
def create_admin_cmd(account: str, password: str, nickname: str) -> None:
    """Create an admin ACCOUNT (email or mainland mobile), or promote an existing one."""
    import asyncio

    require_service()
    from app.seed import with_services

    user = asyncio.run(
        with_services(lambda s: s.accounts.create_admin(account, password, nickname))
    )
    click.echo(f"管理员已就绪: id={user.id} {user.email or user.phone}")


main.add_command(config_group)
main.add_command(migrate_group)
main.add_command(db_group)
main.add_command(user_group)
