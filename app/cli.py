"""The ``luser`` command line: one entry point, subcommands from every package."""

from __future__ import annotations

import click

from luser_config.cli import config_group
from luser_db.cli import cli_errors, db_group, env_option, migrate_group, run_migrations

from .commerce.cli import payments_group


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
@env_option
def serve(
    host: str | None, port: int | None, workers: int | None, no_migrate: bool, no_seed: bool
) -> None:
    """Apply pending migrations (and seed demo data in development), then run the service."""
    import uvicorn

    from luser_config import load_config

    if not no_migrate:
        _migrate_first()
    cfg = load_config()
    if cfg.env == "development" and not no_seed:
        _seed_first()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or cfg.server.host,
        port=port or cfg.server.port,
        workers=workers or cfg.server.workers,
    )


@cli_errors
def _migrate_first() -> None:
    import asyncio

    asyncio.run(run_migrations())


@cli_errors
def _seed_first() -> None:
    import asyncio

    from .seed import seed_demo

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

    from .seed import with_services

    user = asyncio.run(
        with_services(lambda s: s.accounts.create_admin(account, password, nickname))
    )
    click.echo(f"管理员已就绪: id={user.id} {user.email or user.phone}")


main.add_command(config_group)
main.add_command(migrate_group)
main.add_command(db_group)
main.add_command(user_group)
main.add_command(payments_group)
