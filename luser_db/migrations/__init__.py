"""Versioned SQL migrations: files on disk, the Migrator that applies them, and a safety lint.

    from luser_db.migrations import Migrator
    await Migrator().up()            # config decides the database and the folder

See docs/migrations.md for the file format and the ``luser migrate`` commands.
"""

from .files import Migration, Section, checksum, load_migrations, new_migration
from .lint import RULES, LintIssue, lint_migration, lint_migrations
from .migrator import SCHEMA_TABLE, AppliedMigration, MigrationState, MigrationStatus, Migrator

__all__ = [
    "RULES",
    "SCHEMA_TABLE",
    "AppliedMigration",
    "LintIssue",
    "Migration",
    "MigrationState",
    "MigrationStatus",
    "Migrator",
    "Section",
    "checksum",
    "lint_migration",
    "lint_migrations",
    "load_migrations",
    "new_migration",
]
