"""SQL template files: aiosql-format files, Jinja2 fragments, bound values, reload, config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import luser_db
from luser_common import ValidationError
from luser_db import Db, Field, Model, SqlTemplateError, render_template, set_sql_dirs
from luser_db.templates import SqlFiles, compile_sql, reset_sql_files

USERS_SQL = """\
-- name: find_adults
-- Users of at least :min_age, oldest first.
SELECT name, age FROM orm.users WHERE age >= :min_age ORDER BY age DESC, name

-- name: by_age^
SELECT name FROM orm.users WHERE age = ? ORDER BY name

-- name: search
SELECT name, age FROM orm.users WHERE true
{% if name %} AND name = :name {% endif %}
{% if min_age is not none %} AND age >= :min_age {% endif %}
ORDER BY {{ sort or "id" }}

-- name: count_between$
SELECT count(*) AS n FROM orm.users WHERE age BETWEEN :low AND :high AND :low <= :high
"""


class TplUser(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0


@pytest.fixture
def sql_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "sql"
    (folder / "admin").mkdir(parents=True)
    (folder / "users.sql").write_text(USERS_SQL)
    (folder / "admin" / "users.sql").write_text("-- name: total\nSELECT count(*) FROM orm.users\n")
    set_sql_dirs(folder, reload=False)
    yield folder
    reset_sql_files()


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# -- rendering, no database ---------------------------------------------------------------


def test_names_come_from_the_file_path_and_aiosql_headers(sql_dir: Path) -> None:
    files = SqlFiles.load([sql_dir])
    assert sorted(t.name for t in files) == [
        "admin.users.total",
        "users.by_age",
        "users.count_between",
        "users.find_adults",
        "users.search",
    ]
    adults = files.get("users.find_adults")
    assert adults.doc == "Users of at least :min_age, oldest first."
    assert adults.location == f"{sql_dir / 'users.sql'}:1"


def test_named_parameters_become_numbered_and_repeat(sql_dir: Path) -> None:
    sql, args = render_template("users.count_between", low=1, high=9)
    assert sql.endswith("age BETWEEN $1 AND $2 AND $1 <= $2")
    assert args == [1, 9]
    sql, args = render_template("users.by_age", 30)
    assert "age = $1" in sql and args == [30]


def test_placeholder_lexer_leaves_literals_comments_and_casts_alone() -> None:
    compiled = compile_sql(
        "select ':no', \":no\", $$ :no ? $$, x::int, arr[1:2], data ?? 'k' -- :no ?\n"
        "/* :no */ from t where a = :a and b = :b and c = :a"
    )
    assert compiled.names == ("a", "b")
    assert "x::int" in compiled.sql and "arr[1:2]" in compiled.sql
    assert "data ? 'k'" in compiled.sql
    assert compiled.sql.endswith("a = $1 and b = $2 and c = $1")
    assert compile_sql("select * from t where a = ? and b = ?").arity == 2
    dollar = compile_sql("select $2::int, $1")
    assert dollar.arity == 2 and dollar.sql == "select $2::int, $1" and dollar.names == ()


def test_optional_fragments_bind_every_value(sql_dir: Path) -> None:
    sql, args = render_template("users.search", name="ann' or 1=1 --", min_age=None)
    assert "name = $1" in sql and "age >=" not in sql
    assert args == ["ann' or 1=1 --"]  # the value travels as a parameter, never as text
    assert "ann" not in sql
    sql, args = render_template("users.search", min_age=18, sort="age")
    assert "name =" not in sql and "age >= $1" in sql and 'ORDER BY "age"' in sql
    assert args == [18]


def test_an_output_that_is_not_an_identifier_is_refused(sql_dir: Path) -> None:
    with pytest.raises(ValidationError) as info:
        render_template("users.search", sort="age; drop table orm.users")
    assert info.value.code == "VALIDATION_ERROR"
    with pytest.raises(ValidationError, match=":name"):
        render_template("users.search", sort=1)


def test_renderings_are_memoised_by_what_the_fragments_read(sql_dir: Path) -> None:
    template = luser_db.templates.sql_files().get("users.search")
    assert template.shape == (("min_age", True), ("name", True), ("sort", False))
    first = render_template("users.search", name="ann", sort="age")
    second = render_template("users.search", name="bob", sort="age")
    assert first[0] == second[0] and first[1] == ["ann"] and second[1] == ["bob"]
    assert len(template.memo) == 1
    assert "name =" not in render_template("users.search", name="", sort="age")[0]
    assert render_template("users.search", min_age=0)[1] == [0]  # 0 is not None: kept
    assert 'ORDER BY "name"' in render_template("users.search", sort="name")[0]
    with pytest.raises(ValidationError):  # a new value is rendered, never served from memo
        render_template("users.search", sort="age; drop table orm.users")


def test_a_list_walked_by_for_renders_without_memo(tmp_path: Path) -> None:
    _write(tmp_path, "c.sql", "-- name: cols\nSELECT {% for c in cols %}{{ c }}, {% endfor %}1\n")
    template = SqlFiles.load([tmp_path]).get("c.cols")
    assert template.render((), {"cols": ["a", "b"]})[0] == 'SELECT "a", "b", 1'
    assert template.render((), {"cols": ["c"]})[0] == 'SELECT "c", 1'
    with pytest.raises(ValidationError):
        template.render((), {"cols": ["a", "1; drop"]})


@pytest.mark.parametrize(
    "body, tag",
    [
        ("{% filter replace('X', v) %}X{% endfilter %}", "{% filter %}"),
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "{% macro %}"),
        ("{% include 'x.sql' %}", "{% include %}"),
    ],
)
def test_tags_that_could_write_a_value_are_refused_at_load(
    tmp_path: Path, body: str, tag: str
) -> None:
    path = _write(tmp_path, "bad.sql", f"-- name: ok\nselect 1\n\n-- name: evil\nselect\n{body}\n")
    with pytest.raises(SqlTemplateError) as info:
        SqlFiles.load([tmp_path])
    assert f"{path}:6: bad.evil" in info.value.message and tag in info.value.message
    assert info.value.code == "SQL_TEMPLATE_ERROR"


def test_missing_and_extra_parameters(sql_dir: Path) -> None:
    with pytest.raises(ValidationError, match="缺少参数 high") as info:
        render_template("users.count_between", low=1)
    assert info.value.field == "high"
    with pytest.raises(ValidationError, match="没有参数 nope") as info:
        render_template("users.count_between", low=1, high=2, nope=3)
    assert info.value.field == "nope"
    with pytest.raises(ValidationError, match="没有参数 nope"):
        render_template("users.search", nope=1)
    with pytest.raises(ValidationError, match="需要 1 个位置参数, 收到 2 个"):
        render_template("users.by_age", 1, 2)
    with pytest.raises(ValidationError, match="按名称"):
        render_template("users.find_adults", 1)


def test_unknown_name_names_the_folder_and_close_names(sql_dir: Path) -> None:
    with pytest.raises(SqlTemplateError) as info:
        render_template("users.find_adult")
    message = info.value.message
    assert str(sql_dir) in message and "users.find_adults" in message
    missing = sql_dir / "nowhere"
    set_sql_dirs(sql_dir, missing, reload=False)
    with pytest.raises(SqlTemplateError, match="文件夹不存在"):
        render_template("nope")


def test_duplicate_name_across_files_names_both(tmp_path: Path) -> None:
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    first = _write(one, "users.sql", "-- name: x\nselect 1\n")
    second = _write(two, "users.sql", "-- name: x\nselect 2\n")
    with pytest.raises(SqlTemplateError) as info:
        SqlFiles.load([one, two])
    assert f"{second}:1" in info.value.message and f"{first}:1" in info.value.message


def test_mixing_named_and_positional_parameters_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.sql", "-- name: mixed\nselect * from t where a = :a and b = ?\n")
    with pytest.raises(SqlTemplateError, match="混用") as info:
        SqlFiles.load([tmp_path])
    assert f"{path}:1: m.mixed" in info.value.message


def test_parse_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.sql", "-- name: 1bad\nselect 1\n")
    with pytest.raises(SqlTemplateError) as info:
        SqlFiles.load([tmp_path])
    assert str(path) in info.value.message


def test_files_load_once_unless_reload_is_on(sql_dir: Path) -> None:
    path = sql_dir / "admin" / "users.sql"
    frozen = SqlFiles.load([sql_dir], reload=False)
    live = SqlFiles.load([sql_dir], reload=True)
    path.write_text("-- name: total\nSELECT count(*) AS total_rows FROM orm.users WHERE true\n")
    assert "total_rows" not in frozen.get("admin.users.total").source
    assert "total_rows" in live.get("admin.users.total").source
    _write(sql_dir, "new.sql", "-- name: one\nselect 1\n")
    assert live.get("new.one").source == "select 1"
    with pytest.raises(SqlTemplateError):
        frozen.get("new.one")


async def test_sql_dir_is_read_from_config(tmp_path: Path) -> None:
    import luser_config

    one, two = tmp_path / "q1", tmp_path / "q2"
    one.mkdir(), two.mkdir()
    _write(one, "a.sql", "-- name: x\nselect 1\n")
    _write(two, "b.sql", "-- name: y\nselect 2\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "default.toml").write_text(f'[database]\nsql_dir = ["{one}", "{two}"]\n')
    (conf / "development.toml").write_text("")
    reset_sql_files()
    await luser_config.init_config(env="development", config_dir=conf)
    try:
        files = luser_db.templates.sql_files()
        assert files.dirs == (one, two) and files.reload is True
        assert render_template("b.y") == ("select 2", [])
        (conf / "default.toml").write_text(f'[database]\nsql_dir = "{one}"\n')
        await luser_config.init_config(env="test", config_dir=conf)
        files = set_sql_dirs()
        assert files.dirs == (one,) and files.reload is False
    finally:
        luser_config.reset_config()
        reset_sql_files()


# -- against PostgreSQL -------------------------------------------------------------------


@pytest.fixture
async def people(orm_schema: str, db_tx: object, sql_dir: Path) -> None:
    await Db.batch(
        "insert into orm.users(name, email, age) values (?, ?, ?)",
        [("ann", "ann@x.io", 30), ("bob", "bob@x.io", 17), ("cid", "cid@x.io", 45)],
    )


@pytest.mark.usefixtures("people")
async def test_db_template_runs_the_rendered_sql() -> None:
    rows = await Db.template("users.find_adults", min_age=18)
    assert [(r.name, r.age) for r in rows] == [("cid", 45), ("ann", 30)]
    assert [r.name for r in await Db.template("users.search", name="bob")] == ["bob"]
    assert [r.name for r in await Db.template("users.search", min_age=40, sort="age")] == ["cid"]
    assert [r.name for r in await Db.template("users.by_age", 17)] == ["bob"]
    first = await Db.template_first("users.find_adults", min_age=18)
    assert first is not None and first.name == "cid"
    assert await Db.template_first("users.find_adults", min_age=99) is None


@pytest.mark.usefixtures("people")
async def test_template_paginate_counts_the_same_rendering() -> None:
    page = await Db.template_paginate("users.search", 1, 2, min_age=10, sort="name")
    assert page.total_row == 3 and [r.name for r in page.items] == ["ann", "bob"]
    page = await Db.template_paginate("users.search", 2, 2, min_age=10, sort="name")
    assert [r.name for r in page.items] == ["cid"]
    with pytest.raises(ValidationError):
        await Db.template_paginate("users.search", 0, 2)


@pytest.mark.usefixtures("people")
async def test_model_template_builds_models() -> None:
    users = await TplUser.template("users.search", min_age=18, sort="name")
    assert [type(u) for u in users] == [TplUser, TplUser]
    assert [u.name for u in users] == ["ann", "cid"]


@pytest.mark.usefixtures("people")
async def test_a_hostile_value_stays_a_value() -> None:
    rows = await Db.template("users.search", name="x' or '1'='1")
    assert rows == []
    assert await Db.query_int("select count(*) from orm.users") == 3


def test_render_needs_no_database(sql_dir: Path) -> None:
    sql, args = render_template("users.find_adults", min_age=18)
    assert sql.startswith("SELECT name, age FROM orm.users WHERE age >= $1") and args == [18]
