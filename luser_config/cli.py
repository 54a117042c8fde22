"""``luser config ...`` commands."""

from __future__ import annotations

import click


@click.group("config")
def config_group() -> None:
    """Show, encrypt and rotate configuration."""
