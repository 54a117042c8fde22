"""The safety lint: each unsafe pattern is flagged, the safe variants pass, markers silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from luser_db.migrations import RULES, lint_migrations, load_migrations


def _lint(mdir: Path, write, sql: str, name: str = "0001_m.up.sql") -> list[str]:
    write(name, sql)
    return [issue.rule for issue in lint_migrations(load_migrations(mdir))]


UNSAFE = [
    ("alter table users add column age int not null;", "not-null-without-default"),
    ("ALTER TABLE public.users ADD age int NOT NULL, ADD b text;", "not-null-without-default"),
    (
        'alter table "Users" add column if not exists id2 bigint primary key;',
        "not-null-without-default",
    ),
    ("create index users_email_idx on users (email);", "index-without-concurrently"),
    (
        "CREATE UNIQUE INDEX IF NOT EXISTS u ON ONLY public.users USING btree (lower(email));",
        "index-without-concurrently",
    ),
    ("create index on users (email);", "index-without-concurrently"),
    ("create index concurrently users_email_idx on users (email);", "concurrently-in-transaction"),
    ("alter table users drop column age;", "drop-column"),
    ("alter table users drop if exists age cascade;", "drop-column"),
    ("drop table users;", "drop-table"),
    ("DROP TABLE IF EXISTS a, b CASCADE;", "drop-table"),
    ("alter table users alter column age type bigint;", "alter-column-type"),
    ("alter table users alter age set data type bigint using age::bigint;", "alter-column-type"),
]


@pytest.mark.parametrize(("sql", "rule"), UNSAFE)
def test_unsafe_patterns_are_flagged(mdir: Path, write, sql: str, rule: str) -> None:
    assert rule in _lint(mdir, write, sql)


SAFE = [
    "alter table users add column age int not null default 0;",
    "alter table users add column age int;",
    "alter table users add column n bigint generated always as identity;",
    "alter table users add column id2 bigserial not null;",
    "alter table users add constraint age_check check (age > 0) not valid;",
    "alter table users alter column age set not null, alter column age drop default;",
    "alter table users drop constraint age_check;",
    "-- migrate:no-transaction\ncreate index concurrently users_email_idx on users (email);",
    # a table created earlier in the same file is new: its indexes and columns are fine
    "create table t (id int);\ncreate index t_id on t (id);\nalter table t add x int not null;"
    "\nalter table t alter column id type bigint;",
    "create temp table tmp (id int); drop table tmp;",
    # keywords inside literals and comments do not count
    "insert into notes values ('drop table users;');\n-- drop table users;\nselect 1;",
    "create function f() returns void language plpgsql as $$ begin drop table users; end $$;",
]


@pytest.mark.parametrize("sql", SAFE)
def test_safe_statements_pass(mdir: Path, write, sql: str) -> None:
    assert _lint(mdir, write, sql) == []


def test_allow_destructive_marker(mdir: Path, write) -> None:
    sql = "-- lint:allow-destructive\nalter table users drop column age;\ndrop table old_things;"
    assert _lint(mdir, write, sql) == []


def test_ignore_marker_silences_named_rules_only(mdir: Path, write) -> None:
    sql = (
        "-- lint:ignore alter-column-type\nalter table users alter column a type text;\n"
        "create index i on users (a);"
    )
    assert _lint(mdir, write, sql) == ["index-without-concurrently"]


def test_down_part_is_not_linted(mdir: Path, write) -> None:
    write("0001_m.down.sql", "drop table users;")
    assert _lint(mdir, write, "create table users (id int);") == []


def test_issue_names_file_line_and_rule(mdir: Path, write) -> None:
    write("0004_x.up.sql", "create table a (id int);\n-- why\ndrop table b;\n")
    (issue,) = lint_migrations(load_migrations(mdir))
    assert str(issue).startswith("0004_x.up.sql:3: [drop-table] ")
    assert issue.message.startswith(RULES["drop-table"])
