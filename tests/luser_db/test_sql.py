"""Placeholder rewriting and identifier quoting: examples, hypothesis properties, and a
round trip through a real server (PostgreSQL itself says where the parameters are)."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luser_common import ValidationError
from luser_db._sql import check_ident, compile_template, quote_ident, to_dollar

# -- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select ?", "select $1"),
        ("a = ? and b = ?", "a = $1 and b = $2"),
        ("x = '?' and y = ?", "x = '?' and y = $1"),
        ("x = 'it''s ?' and y = ?", "x = 'it''s ?' and y = $1"),
        (r"x = E'\'?' and y = ?", r"x = E'\'?' and y = $1"),
        (r"x = e'a\\' and y = ?", r"x = e'a\\' and y = $1"),
        (r"x = '\' and y = ?", r"x = '\' and y = $1"),  # standard strings: no escapes
        ('select "we?ird" from t where a = ?', 'select "we?ird" from t where a = $1'),
        ('select "a""?" , ?', 'select "a""?" , $1'),
        ("select $$ ? $$, ?", "select $$ ? $$, $1"),
        ("select $fn$ it's ? $fn$, ?", "select $fn$ it's ? $fn$, $1"),
        ("select 1 -- what?\n, ?", "select 1 -- what?\n, $1"),
        ("select /* a ? /* nested ? */ still ? */ ?", "select /* a ? /* nested ? */ still ? */ $1"),
        ("select ?::int, a::text", "select $1::int, a::text"),
        ("select profile ?? 'k', ?", "select profile ? 'k', $1"),
        ("select p ??| array['a'], ?", "select p ?| array['a'], $1"),
        ("select $1, $2", "select $1, $2"),
        ("select $1 where p ? 'k'", "select $1 where p ? 'k'"),
        ("select $1 where p ?? 'k'", "select $1 where p ?? 'k'"),
        ("select a$b, ?", "select a$b, $1"),
        ("select 1", "select 1"),
        ("", ""),
        ("select 'unterminated ?", "select 'unterminated ?"),
    ],
)
def test_to_dollar_examples(sql: str, expected: str) -> None:
    assert to_dollar(sql) == expected


def test_template_render_with_offset() -> None:
    t = compile_template("a = $2 and b = $1 and c = $2")
    assert t.arity == 2
    assert t.render(3) == "a = $5 and b = $4 and c = $5"
    q = compile_template("a = ? and b = ?")
    assert q.arity == 2 and q.render(1) == "a = $2 and b = $3"


def test_non_standard_strings_mode() -> None:
    t = compile_template(r"select 'a\' ?' , ?", standard_strings=False)
    assert t.arity == 1


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", 'a"b', "a b", "a;drop", "x" * 64, "a.b.c", "ü"])
def test_quote_ident_rejects(bad: str) -> None:
    with pytest.raises(ValidationError):
        quote_ident(bad)


def test_quote_ident_accepts() -> None:
    assert quote_ident("users") == '"users"'
    assert quote_ident("orm.users") == '"orm"."users"'
    assert quote_ident("_a1") == '"_a1"'
    assert check_ident("ok_1") == "ok_1"


# -- properties --------------------------------------------------------------------------

_text = st.text(alphabet=st.sampled_from("ab ?$'\"\\-*/\n:;é"), max_size=12)
_tag = st.sampled_from(["", "q", "fn_1"])


@st.composite
def _literal(draw: st.DrawFn) -> str:
    """A token PostgreSQL lexes as one unit, whatever '?' it contains.

    Each starts with a space: two quoted tokens written back to back are one token to
    PostgreSQL (``'a'`` then ``'b'`` is ``'a''b'``), so joining them bare would make SQL
    whose expected rewrite is wrong, not the scanner.
    """
    body = draw(_text)
    kind = draw(st.sampled_from(["str", "estr", "ident", "dollar", "line", "block"]))
    if kind == "str":
        return " '" + body.replace("'", "''") + "'"
    if kind == "estr":
        return " E'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind == "ident":
        return ' "' + body.replace('"', '""') + '"'
    if kind == "dollar":
        tag = draw(_tag)
        delim = f"${tag}$"
        if delim in body:
            body = body.replace("$", "")
        return f" {delim}{body}{delim} "
    if kind == "line":
        return " --" + body.replace("\n", " ") + "\n"
    return " /* " + body.replace("*", "").replace("/", "") + " */ "


_plain = st.sampled_from([" select ", " a ", " = ", " , ", "::int", " ( ", " ) ", " 1 "])
_piece = st.one_of(_literal(), _plain, st.just(" ? "), st.just(" ?? "))


@given(st.lists(_piece, max_size=12))
def test_only_bare_question_marks_become_parameters(pieces: list[str]) -> None:
    sql = "".join(pieces)
    expected = []
    n = 0
    for piece in pieces:
        if piece == " ? ":
            n += 1
            expected.append(f" ${n} ")
        elif piece == " ?? ":
            expected.append(" ? ")
        else:
            expected.append(piece)
    assert to_dollar(sql) == "".join(expected)
    assert compile_template(sql).arity == n


@given(
    st.lists(
        st.one_of(_literal(), _plain, st.just(" $1 "), st.just(" $2 "), st.just(" ? ")), max_size=10
    )
)
def test_dollar_sql_passes_through_unchanged(pieces: list[str]) -> None:
    sql = "".join(pieces)
    if " $1 " in pieces or " $2 " in pieces:
        assert to_dollar(sql) == sql


@given(st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=5))
def test_render_offsets_are_consistent(offset: int, n: int) -> None:
    sql = " and ".join(["x = ?"] * n) or "true"
    rendered = compile_template(sql).render(offset)
    assert rendered.count("$") == n
    for i in range(n):
        assert f"${offset + i + 1}" in rendered


# -- round trip through PostgreSQL -------------------------------------------------------

_value_text = st.text(alphabet=st.sampled_from("ab?$'\"\\ -*/é"), max_size=10)


@st.composite
def _query(draw: st.DrawFn) -> tuple[str, list[str]]:
    """``select <literal-or-param>, ...`` and the values PostgreSQL must return."""
    columns, args, expect = [], [], []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        value = draw(_value_text)
        kind = draw(st.sampled_from(["param", "str", "estr", "dollar"]))
        if kind == "param":
            columns.append("?::text")
            args.append(value)
        elif kind == "str":
            columns.append("'" + value.replace("'", "''") + "'")
        elif kind == "estr":
            columns.append("E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
        else:
            body = value.replace("$", "")
            columns.append(f"$q${body}$q$")
            value = body
        expect.append(value)
    sql = "select " + ", ".join(columns) + " -- trailing ? comment"
    return sql, [*args, "\0".join(expect)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_query())
async def test_round_trip_against_postgres(database_url: str, case: tuple[str, list[str]]) -> None:
    sql, args_and_expected = case
    *args, expected = args_and_expected
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(to_dollar(sql), *args)
    finally:
        await conn.close()
    assert "\0".join(row.values()) == expected
