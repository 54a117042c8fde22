"""The baseline: a minimal Starlette app on a raw asyncpg pool, hand-written SQL.

It answers ``GET /api/videos?page=&size=`` and ``GET /api/videos/{id}`` with the
same rows, fields, envelope and JSON encoding as the service (count query first,
then the page, as ``QueryBuilder.paginate`` does), and nothing else: no
validation models, no middleware, no ORM. Run it like the service::

    BENCH_RAW_DSN=postgresql://... uvicorn benchmarks.service.raw_app:create_app --factory

``BENCH_POOL_SIZE`` sets the pool's min and max size (default 10). The pool's
release does no reset round trip (asyncpg's default runs ``RESET ALL`` and
friends on every release): the baseline is the fastest reasonable raw code.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COLUMNS = (
    "id, category_id, title, description, cover_url, duration_seconds, provider,"
    " preview_seconds, required_level, published_at"
)
# Literal predicates so the partial indexes of migration 0011 apply (as in the service).
PUBLIC = "status = 'published' AND deleted_at IS NULL"
COUNT_SQL = f"SELECT count(*) FROM videos WHERE {PUBLIC}"
LIST_SQL = (
    f"SELECT {COLUMNS} FROM videos WHERE {PUBLIC}"
    " ORDER BY published_at DESC, id DESC LIMIT $1 OFFSET $2"
)
DETAIL_SQL = f"SELECT {COLUMNS} FROM videos WHERE id = $1 AND {PUBLIC}"
MAX_BIGINT = 2**63 - 1


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    raise TypeError(type(value).__name__)


def envelope(data: Any, status: int = 200) -> Response:
    """The service's envelope, encoded with the same json.dumps options."""
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    body = json.dumps(
        {"success": True, "data": data, "timestamp": stamp},
        default=_iso,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    return Response(body.encode("utf-8"), status, media_type="application/json")


def failure(status: int, code: str, message: str) -> Response:
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    body = {"success": False, "error": {"code": code, "message": message}, "timestamp": stamp}
    return Response(json.dumps(body, ensure_ascii=False), status, media_type="application/json")


def _int_param(request: Request, name: str, default: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        return None
    return int(raw)


async def list_videos(request: Request) -> Response:
    page = _int_param(request, "page", 1, 10_000)
    size = _int_param(request, "size", 20, 100)
    if page is None or size is None:
        return failure(422, "VALIDATION_ERROR", "参数校验失败")
    pool: asyncpg.Pool = request.app.state.pool
    total = await pool.fetchval(COUNT_SQL)
    offset = (page - 1) * size
    rows = await pool.fetch(LIST_SQL, size, offset) if offset < total else []
    return envelope(
        {
            "items": [dict(row) for row in rows],
            "page_number": page,
            "page_size": size,
            "total_row": total,
            "total_page": (total + size - 1) // size,
        }
    )


async def get_video(request: Request) -> Response:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_BIGINT:
        return failure(404, "NOT_FOUND", "资源不存在")
    row = await request.app.state.pool.fetchrow(DETAIL_SQL, int(raw))
    if row is None:
        return failure(404, "NOT_FOUND", "视频不存在")
    return envelope(dict(row))


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset round trip: these queries leave no session state."""


def create_app() -> Starlette:
    dsn = os.environ["BENCH_RAW_DSN"]
    size = int(os.environ.get("BENCH_POOL_SIZE", "10"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            dsn, min_size=size, max_size=size, reset=_no_reset
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(
        routes=[Route("/api/videos", list_videos), Route("/api/videos/{id}", get_video)],
        lifespan=lifespan,
    )
