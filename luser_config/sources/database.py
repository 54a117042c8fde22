"""The ``app_config`` table: (env, dotted key, jsonb value, encrypted flag, version, audit).

luser_config may not import luser_db, so this talks to PostgreSQL with asyncpg
directly, one short connection per operation (reads are rare: load, poll, set).
Rows keep ``ENC(...)`` tokens as they are; decryption happens with every other
layer, after the merge.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from luser_common import ConfigError, EncryptionError

from .._crypto import KeyRing, is_encrypted
from .._paths import flatten, set_path, split
from .._problems import Problem, raise_problems
from .base import Layer, Source

__all__ = ["DDL", "DatabaseSource"]

DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id           bigserial PRIMARY KEY,
    env          text        NOT NULL,
    key          text        NOT NULL,
    value        jsonb       NOT NULL,
    is_encrypted boolean     NOT NULL DEFAULT false,
    version      bigint      NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text,
    UNIQUE (env, key)
)
"""
_UPSERT = """
INSERT INTO {table} (env, key, value, is_encrypted, updated_by)
VALUES ($1, $2, $3::jsonb, $4, $5)
ON CONFLICT (env, key) DO UPDATE
   SET value = excluded.value, is_encrypted = excluded.is_encrypted,
       version = {table}.version + 1, updated_at = now(), updated_by = excluded.updated_by
 WHERE {table}.value IS DISTINCT FROM excluded.value
"""
_INSERT_MISSING = """
INSERT INTO {table} (env, key, value, is_encrypted, updated_by)
VALUES ($1, $2, $3::jsonb, $4, $5) ON CONFLICT (env, key) DO NOTHING
"""
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _has_token(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_token(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_token(v) for v in value)
    return is_encrypted(value)


class DatabaseSource:
    """Reads, writes, polls and re-encrypts one environment's rows."""

    def __init__(
        self, dsn: str, env: str, table: str = "app_config", connect_timeout: float = 5.0
    ) -> None:
        if not _TABLE.match(table):
            raise ConfigError(f"配置表名不合法: {table!r}")
        self._dsn, self.env, self.table, self._timeout = dsn, env, table, connect_timeout
        self._ready = False

    def __repr__(self) -> str:  # the DSN may hold a password
        return f"DatabaseSource(env={self.env!r}, table={self.table!r})"

    def _sql(self, template: str) -> str:
        return template.format(table=self.table)

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise ConfigError(
                f"无法连接配置数据库 (表 {self.table}): {type(exc).__name__}"
            ) from exc
        try:
            if not self._ready:
                await self._ensure_table(conn)
            yield conn
        finally:
            await conn.close()

    async def _ensure_table(self, conn: asyncpg.Connection) -> None:
        # Another process may create it at the same moment.
        with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
            await conn.execute(self._sql(DDL))
        self._ready = True

    async def read(self) -> Layer:
        """This environment's rows as a Layer (shorter keys first, so leaves win)."""
        async with self._connect() as conn:
            rows = await conn.fetch(
                self._sql("SELECT key, value FROM {table} WHERE env = $1"), self.env
            )
        layer = Layer(f"db:{self.table}")
        source = Source("db", f"{self.table}[env={self.env}]")
        for row in sorted(rows, key=lambda r: (r["key"].count("."), r["key"])):
            value = json.loads(row["value"])
            set_path(layer.data, split(row["key"]), value)
            layer.provenance[row["key"]] = source
            if isinstance(value, dict):
                for sub in flatten(value, row["key"]):
                    layer.provenance[sub] = source
        return layer

    async def signature(self) -> tuple[Any, ...]:
        """Changes whenever a row of this environment is added, updated or deleted."""
        async with self._connect() as conn:
            row = await conn.fetchrow(
                self._sql(
                    "SELECT count(*), coalesce(sum(version), 0), max(updated_at) "
                    "FROM {table} WHERE env = $1"
                ),
                self.env,
            )
        return tuple(row) if row is not None else ()

    async def put(self, key: str, value: Any, updated_by: str = "luser_config") -> None:
        async with self._connect() as conn:
            await conn.execute(
                self._sql(_UPSERT), self.env, key, json.dumps(value), _has_token(value), updated_by
            )

    async def delete(self, key: str) -> None:
        async with self._connect() as conn:
            await conn.execute(
                self._sql("DELETE FROM {table} WHERE env = $1 AND key = $2"), self.env, key
            )

    async def sync_from(
        self, data: Mapping[str, Any], *, overwrite: bool, updated_by: str = "force_init"
    ) -> int:
        """Write every leaf of ``data`` (the merged files) as a row; returns rows written."""
        template = _UPSERT if overwrite else _INSERT_MISSING
        written = 0
        async with self._connect() as conn, conn.transaction():
            for key, value in flatten(data).items():
                status = await conn.execute(
                    self._sql(template),
                    self.env,
                    key,
                    json.dumps(value),
                    _has_token(value),
                    updated_by,
                )
                written += int(status.rsplit(" ", 1)[-1])
        return written

    async def rotate(self, old: KeyRing, new: KeyRing, updated_by: str = "rotate-key") -> int:
        """Re-encrypt every ENC value of every environment under ``new``'s primary key in one
        transaction; nothing is written unless every value decrypts. Returns rows changed."""
        async with self._connect() as conn, conn.transaction():
            rows = await conn.fetch(
                self._sql("SELECT id, env, key, value FROM {table} ORDER BY id FOR UPDATE")
            )
            updates: list[tuple[int, str]] = []
            problems: list[Problem] = []
            for row in rows:
                value = json.loads(row["value"])
                if not _has_token(value):
                    continue
                source = Source("db", f"{self.table}[env={row['env']}]")
                fresh = _reencrypt(value, row["key"], old, new, problems, source)
                updates.append((row["id"], json.dumps(fresh)))
            if problems:
                raise_problems("数据库配置轮换失败, 未做任何修改", problems, EncryptionError)
            for row_id, value_json in updates:
                await conn.execute(
                    self._sql(
                        "UPDATE {table} SET value = $2::jsonb, is_encrypted = true, "
                        "version = version + 1, updated_at = now(), updated_by = $3 WHERE id = $1"
                    ),
                    row_id,
                    value_json,
                    updated_by,
                )
        return len(updates)


def _reencrypt(
    value: Any, key: str, old: KeyRing, new: KeyRing, problems: list[Problem], source: Source
) -> Any:
    if isinstance(value, dict):
        return {
            k: _reencrypt(v, f"{key}.{k}", old, new, problems, source) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_reencrypt(v, key, old, new, problems, source) for v in value]
    if not is_encrypted(value):
        return value
    try:
        return new.encrypt(old.decrypt(value, key), key)
    except EncryptionError as exc:
        problems.append(Problem(key, exc.message.split(": ", 1)[-1], source))
        return value
