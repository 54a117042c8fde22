"""The ``luser`` command line: one entry point, subcommands from every package."""

from __future__ import annotations

import click

from luser_config.cli import config_group
from luser_db.cli import db_group, migrate_group


@click.group()
@click.version_option(package_name="luser")
def main() -> None:
    """luser: async ActiveRecord toolkit for PostgreSQL and the video-subscription service."""


@main.command()
@click.option("--host", default=None, help="Bind address (default: server.host from config).")
@click.option("--port", default=None, type=int, help="Port (default: server.port from config).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP service with uvicorn."""
    import uvicorn

    from luser_config import load_config

    cfg = load_config()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or cfg.server.host,
        port=port or cfg.server.port,
    )


main.add_command(config_group)
main.add_command(migrate_group)
main.add_command(db_group)
