"""Migration files: naming, both layouts, markers, checksums, scaffolding, splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from luser_common import ConfigError, ValidationError
from luser_db.migrations import load_migrations, new_migration
from luser_db.migrations._scan import split_statements


def test_pair_layout(write, mdir: Path) -> None:
    write("0002_b.up.sql", "create table b (id int);")
    write("0001_a.up.sql", "create table a (id int);")
    write("0001_a.down.sql", "drop table a;")
    a, b = load_migrations(mdir)
    assert (a.version, a.name, a.label) == (1, "a", "0001_a")
    assert a.down is not None and "drop table a" in a.down.sql
    assert b.version == 2 and b.down is None


def test_single_file_sections(write, mdir: Path) -> None:
    write(
        "0003_c.sql",
        "-- header\n-- migrate:up\ncreate table c (id int);\n-- migrate:down\ndrop table c;\n",
    )
    (m,) = load_migrations(mdir)
    assert "create table c" in m.up.sql and "-- header" in m.up.sql
    assert m.down is not None and m.down.sql.strip() == "drop table c;"


def test_single_file_without_sections_is_up_only(write, mdir: Path) -> None:
    write("0010_x.sql", "create table x (id int);")
    (m,) = load_migrations(mdir)
    assert m.down is None and "create table x" in m.up.sql


def test_markers(write, mdir: Path) -> None:
    write(
        "0001_a.up.sql",
        "-- migrate:no-transaction\n-- lint:allow-destructive\n"
        "-- lint:ignore alter-column-type, x\n",
    )
    (m,) = load_migrations(mdir)
    assert m.up.transactional is False
    assert {"drop-column", "drop-table", "alter-column-type", "x"} <= m.up.lint_ignore


def test_checksum_covers_up_only_and_ignores_line_endings(write, mdir: Path) -> None:
    write("0001_a.up.sql", "create table a (id int);\n")
    write("0001_a.down.sql", "drop table a;")
    before = load_migrations(mdir)[0].checksum
    write("0001_a.down.sql", "drop table if exists a;")
    write("0001_a.up.sql", "create table a (id int);\r\n")
    assert load_migrations(mdir)[0].checksum == before
    write("0001_a.up.sql", "create table a (id bigint);\n")
    assert load_migrations(mdir)[0].checksum != before


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        (["0001_a.up.sql", "0001_b.up.sql"], "重复"),
        (["0001_a.up.sql", "0001_a.sql"], "重复"),
        (["0002_a.down.sql"], "缺少"),
        (["notes.sql"], "格式"),
    ],
)
def test_bad_layouts(write, mdir: Path, files: list[str], fragment: str) -> None:
    for name in files:
        write(name, "select 1;")
    with pytest.raises(ConfigError, match=fragment):
        load_migrations(mdir)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="迁移目录不存在"):
        load_migrations(tmp_path / "nope")


def test_new_migration_numbers_and_scaffolds(write, mdir: Path) -> None:
    write("0007_a.up.sql", "select 1;")
    up, down = new_migration(mdir, "Add Videos")
    assert (up.name, down.name) == ("0008_add_videos.up.sql", "0008_add_videos.down.sql")
    assert [m.version for m in load_migrations(mdir)] == [7, 8]


def test_new_migration_in_empty_folder(tmp_path: Path) -> None:
    up, _ = new_migration(tmp_path / "fresh", "init")
    assert up.name == "0001_init.up.sql"


def test_new_migration_rejects_bad_names(mdir: Path) -> None:
    with pytest.raises(ValidationError):
        new_migration(mdir, "drop; table")


def test_split_statements_respects_literals_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    insert into t values ('a;b', E'it\\'s;', "we;ird");
    /* block; /* nested; */ still; */ select 1;
    create function f() returns int language sql as $body$ select 1; $body$;
    select $$x;y$$
    """
    stmts = split_statements(sql)
    assert len(stmts) == 4
    assert stmts[0].code == "insert into t values ('', E'', \"we;ird\")"
    assert "comment" not in stmts[0].code and stmts[0].line == 3
    assert stmts[2].text.endswith("$body$")
    assert stmts[3].code == "select ''"
