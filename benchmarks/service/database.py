"""The scratch database: created fresh, migrated with the app's migrations, seeded, dropped."""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
VIDEO_COLUMNS = (
    "category_id",
    "title",
    "description",
    "cover_url",
    "duration_seconds",
    "provider",
    "media_id",
    "media_status",
    "status",
    "preview_seconds",
    "required_level",
    "published_at",
)


async def server_url(dsn: str | None, embedded: bool = False) -> tuple[str, str]:
    """A reachable server URL and where it came from: ``dsn``, else the local server on
    127.0.0.1:5432, else (or when ``embedded``) the embedded PostgreSQL."""
    if embedded:
        return await _embedded(), "embedded"
    candidate = dsn or DEFAULT_DSN
    try:
        conn = await asyncpg.connect(candidate, timeout=3)
        await conn.close()
        return candidate, "dsn" if dsn else "local server"
    except (OSError, asyncpg.PostgresError, TimeoutError):
        if dsn:
            raise
    return await _embedded(), "embedded"


async def _embedded() -> str:
    from luser_db.embedded import start_embedded

    return await asyncio.to_thread(start_embedded)


async def create(base: str, root: str) -> str:
    """A new empty database on ``base``'s server with the app's migrations applied."""
    from luser_db.embedded import with_database
    from luser_db.migrations import Migrator

    name = f"luser_bench_service_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(base, name)
    await Migrator(url, directory=os.path.join(root, "app", "migrations")).up()
    return url


async def seed(url: str, videos: int, categories: int = 10) -> list[int]:
    """``videos`` published videos spread over ``categories``; returns the video ids."""
    conn = await asyncpg.connect(url)
    try:
        category_ids = [
            await conn.fetchval(
                "INSERT INTO categories (name, slug, sort_order) VALUES ($1, $2, $3) RETURNING id",
                f"分类 {n}",
                f"bench-{n}",
                n,
            )
            for n in range(categories)
        ]
        now = datetime.now(UTC)
        records = [
            (
                category_ids[i % categories],
                f"基准视频 {i}",
                f"第 {i} 个基准测试视频的简介, 用来填充列表页的描述字段。",
                f"https://img.example.com/covers/{i}.jpg",
                60 + i % 3600,
                "tencent" if i % 2 else "aliyun",
                f"media-{i}",
                "ready",
                "published",
                30,
                i % 3,
                now - timedelta(minutes=i),
            )
            for i in range(videos)
        ]
        await conn.copy_records_to_table("videos", records=records, columns=VIDEO_COLUMNS)
        # As autovacuum would leave a settled table: statistics and the visibility map
        # (index-only scans for the count) in place before measuring.
        await conn.execute("VACUUM (ANALYZE) categories")
        await conn.execute("VACUUM (ANALYZE) videos")
        return [row["id"] for row in await conn.fetch("SELECT id FROM videos ORDER BY id")]
    finally:
        await conn.close()


def database_name(url: str) -> str:
    """The database of a URL; the embedded server's has its socket in the query string."""
    return urlsplit(url).path.lstrip("/")


def tagged(url: str, application_name: str) -> str:
    """``url`` whose connections show ``application_name`` in pg_stat_activity."""
    return f"{url}{'&' if '?' in url else '?'}application_name={application_name}"


async def backend_pids(base: str, url: str, application_name: str) -> list[int]:
    """Server process ids of the connections ``application_name`` holds to ``url``'s db."""
    name = database_name(url)
    conn = await asyncpg.connect(base)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            name,
            application_name,
        )
        return [row["pid"] for row in rows]
    finally:
        await conn.close()


async def drop(base: str, url: str) -> None:
    name = database_name(url)
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
