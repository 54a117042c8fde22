"""Bulk work: COPY inserts, grouped batch updates, upserts, soft delete and streaming.

python examples/bulk_and_streaming.py
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import luser_db
from luser_db import Db, Field, Model


class Video(Model, table="example_videos", soft_delete=True):
    id: int = Field(primary_key=True)
    slug: str
    title: str
    views: int = 0
    tags: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


SCHEMA = """
CREATE TABLE example_videos (
    id bigserial PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    title text NOT NULL,
    views int NOT NULL DEFAULT 0,
    tags text[] NOT NULL DEFAULT '{}',
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz
)
"""


async def main() -> None:
    await Db.execute("DROP TABLE IF EXISTS example_videos")
    await Db.execute(SCHEMA)
    try:
        await bulk()
    finally:
        await Db.execute("DROP TABLE IF EXISTS example_videos")
        await luser_db.close()


async def bulk() -> None:
    videos = [Video(slug=f"v{i}", title=f"Video {i}", tags=["demo"]) for i in range(20_000)]
    print("COPY inserted:", await Video.batch_save(videos))

    loaded = await Video.query().where("id <= ?", 6).order_by("id").all()
    for v in loaded[:3]:
        v.views += 100  # these three change one column...
    for v in loaded[3:]:
        v.title = v.title.upper()  # ...these another: two executemany calls
    print("batch-updated:", await Video.batch_update(loaded))

    fresh = Video(slug="v1", title="Video 1 (remastered)", views=1)
    await fresh.upsert("slug", update=["title"])
    print("upserted id", fresh.id, "title", fresh.title, "views kept", fresh.views)

    print("soft-deleted:", await Video.query().where("id > ?", 19_990).delete())
    print(
        "visible:",
        await Video.query().count(),
        "| with deleted:",
        await Video.with_deleted().count(),
    )

    total = 0
    async with contextlib.aclosing(Video.query().order_by("id").iterate(batch=2_000)) as rows:
        async for video in rows:  # a server-side cursor: memory stays flat
            total += video.views
    print("views summed over a cursor:", total)


if __name__ == "__main__":
    asyncio.run(main())
