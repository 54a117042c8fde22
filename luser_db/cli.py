"""``luser migrate ...`` and ``luser db ...`` commands."""

from __future__ import annotations

import click


@click.group("migrate")
def migrate_group() -> None:
    """Apply, roll back and check SQL migrations."""


@click.group("db")
def db_group() -> None:
    """Database utilities."""
