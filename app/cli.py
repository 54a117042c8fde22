"""The ``luser`` command line: one entry point, subcommands from every package."""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING

import click

from app.accounts.cli import users_group
from app.catalog.cli import videos_group
from app.commerce.cli import payments_group
from app.commerce.plans_cli import plans_group
from app.config_checks import check_production, uses_embedded
from app.open_api.cli import channels_group, prices_group, tokens_group, wallet_group
from luser_config.cli import config_group
from luser_config.schema import AppConfig
from luser_db import start_embedded, stop_embedded
from luser_db.cli import cli_errors, db_group, env_option, migrate_group, run_migrations

if TYPE_CHECKING:
    import uvicorn


@click.group()
@click.version_option(package_name="luser")
@env_option
def main() -> None:
    """luser: async ActiveRecord toolkit for PostgreSQL and the video-subscription service."""


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
    import uvicorn

    cfg = _checked_config()
    # A signal arriving now, or uvicorn re-raising it after its graceful shutdown, must
    # unwind through the finally below rather than kill the process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded = uses_embedded(cfg)
    try:
        if embedded:
            _start_embedded(cfg.database.embedded_data_dir)
        if not no_migrate:
            _migrate_first()
        if cfg.env == "development" and not no_seed:
            _seed_first()
        status = run_uvicorn(
            uvicorn.Config(
                "app.main:create_app",
                factory=True,
                host=host or cfg.server.host,
                port=port or cfg.server.port,
                workers=workers or cfg.server.workers,
                log_level=cfg.server.log_level,
                forwarded_allow_ips=forwarded_allow_ips,
            )
        )
    finally:
        if embedded:
            stop_embedded(cfg.database.embedded_data_dir)
    if status:
        raise click.exceptions.Exit(status)


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

    cfg = load_config()
    check_production(cfg)
    return cfg


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

    from app.seed import with_services

    user = asyncio.run(
        with_services(lambda s: s.accounts.create_admin(account, password, nickname))
    )
    click.echo(f"管理员已就绪: id={user.id} {user.email or user.phone}")


main.add_command(config_group)
main.add_command(migrate_group)
main.add_command(db_group)
main.add_command(user_group)
main.add_command(payments_group)
main.add_command(users_group)
main.add_command(plans_group)
main.add_command(videos_group)
main.add_command(channels_group)
main.add_command(prices_group)
main.add_command(tokens_group)
main.add_command(wallet_group)
