"""ORM test schema: tables live in schema ``orm``, so the public schema stays empty."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

import luser_db

SCHEMA_SQL = """
DROP SCHEMA IF EXISTS orm CASCADE;
CREATE SCHEMA orm;
CREATE TABLE orm.users (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL CONSTRAINT users_email_key UNIQUE,
    age int NOT NULL DEFAULT 0 CONSTRAINT users_age_check CHECK (age >= 0 AND age < 1000),
    profile jsonb,
    created_at timestamptz,
    updated_at timestamptz
);
CREATE TABLE orm.videos (
    id bigserial PRIMARY KEY,
    user_id bigint CONSTRAINT videos_user_fk REFERENCES orm.users(id),
    title text NOT NULL,
    views int NOT NULL DEFAULT 0,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
);
CREATE TABLE orm.kinds (
    id bigserial PRIMARY KEY,
    flag boolean,
    ratio double precision,
    price numeric(12, 2),
    born date,
    clock time,
    uid uuid,
    blob bytea,
    tags text[],
    scores bigint[],
    color text,
    items jsonb,
    dur interval,
    label text NOT NULL DEFAULT 'x'
);
CREATE TABLE orm.counters (
    id int PRIMARY KEY,
    n int NOT NULL DEFAULT 0
);
"""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def orm_schema(db_pool: str) -> AsyncIterator[str]:
    """Create the ORM test tables once per session (in schema ``orm``); yields the URL."""
    conn = await asyncpg.connect(db_pool)
    try:
        await conn.execute(SCHEMA_SQL)
    finally:
        await conn.close()
    yield db_pool
    conn = await asyncpg.connect(db_pool)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS orm CASCADE")
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def clean_tables(orm_schema: str) -> AsyncIterator[str]:
    """For tests that must really commit: empty the ORM tables afterwards."""
    yield orm_schema
    conn = await asyncpg.connect(orm_schema)
    try:
        await conn.execute(
            "TRUNCATE orm.videos, orm.users, orm.kinds, orm.counters RESTART IDENTITY"
        )
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def own_pool(db_pool: str) -> AsyncIterator[str]:
    """For tests that close or resize the global pool: afterwards it is as db_pool set it."""
    await luser_db.close()
    luser_db.reset()
    try:
        yield db_pool
    finally:
        await luser_db.close()
        luser_db.reset()
        luser_db.init(db_pool, min_size=1, max_size=10)
