"""The public lists come from the query cache, and another process sees a publish on
its next list call: the write's NOTIFY (after commit) evicts that process's entry."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from typing import Any

import httpx

import luser_db
from app.open_api.metrics import OpenApiMetrics

from .conftest import Account

# A second service process, reduced to the catalog: one JSON line per "list" request.
READER = """
import asyncio, json, sys
import luser_db
from app.catalog.service import Catalog

async def main():
    luser_db.init(sys.argv[1], min_size=1, max_size=2)
    catalog = Catalog()
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "list":
        page = await catalog.public_videos(1, 100)
        stats = luser_db.cache.stats()
        print(json.dumps({"titles": [v.title for v in page.items],
                          "hits": stats.hits.get("public_videos", 0)}), flush=True)
    await luser_db.close()

asyncio.run(main())
"""


async def _ask(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"list\n")
    await proc.stdin.drain()
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "reader process ended"
    return dict(json.loads(line))


async def test_published_video_appears_in_another_process(
    api: httpx.AsyncClient, admin: Account, migrated_url: str
) -> None:
    env = {**os.environ, "LUSER__CACHE__BACKEND": "memory", "LUSER__CACHE__ENABLED": "true"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        migrated_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        await _ask(proc)
        cached = await _ask(proc)
        assert cached["hits"] >= 1  # the reader serves the list from its cache
        title = f"cached {uuid.uuid4().hex[:8]}"
        r = await api.post(
            "/api/admin/videos",
            headers=admin.headers,
            json={"title": title, "media_id": f"m-{uuid.uuid4().hex}", "duration_seconds": 60},
        )
        assert r.status_code == 201, r.text
        video_id = r.json()["data"]["id"]
        r = await api.post(f"/api/admin/videos/{video_id}/publish", headers=admin.headers)
        assert r.status_code == 200, r.text
        # Delivery is asynchronous: poll the reader (each call waits for its answer)
        # well inside the 60 s TTL, so only the NOTIFY can have evicted the entry.
        deadline = asyncio.get_running_loop().time() + 15
        while title not in (await _ask(proc))["titles"]:
            assert asyncio.get_running_loop().time() < deadline, "publish never reached it"
    finally:
        assert proc.stdin is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), 30)


async def test_cache_counters_reach_metrics(api: httpx.AsyncClient) -> None:
    metrics = OpenApiMetrics()
    for _ in range(2):
        r = await api.get("/api/videos")
        assert r.status_code == 200, r.text
    text = metrics.render().decode()
    assert _value(text, 'luser_db_cache_hits_total{cache="public_videos"}') >= 1
    assert _value(text, 'luser_db_cache_misses_total{cache="public_videos"}') >= 1
    assert "luser_db_cache_evictions_total" in text
    assert "luser_db_cache_errors_total" in text
    assert luser_db.cache.stats().hits["public_videos"] >= 1


def _value(text: str, series: str) -> float:
    match = re.search(re.escape(series) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0
