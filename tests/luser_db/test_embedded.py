import asyncpg

from luser_db.embedded import with_database


async def test_session_database_is_fresh_and_usable(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("select current_database()")
        # Created for this session by the plugin (other tests may have added tables since).
        assert name.startswith("luser_test_")
        assert await conn.fetchval("select 1 + 1") == 2
    finally:
        await conn.close()


def test_with_database_replaces_only_the_path() -> None:
    assert (
        with_database("postgresql://u:p@h:5432/a?sslmode=x", "b")
        == "postgresql://u:p@h:5432/b?sslmode=x"
    )
    assert with_database("postgresql://postgres:@/postgres?host=/tmp/s", "t") == (
        "postgresql://postgres:@/t?host=/tmp/s"
    )
