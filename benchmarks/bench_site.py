"""Server time of the web site's pages (target: each under 50 ms).

    python benchmarks/bench_site.py                      # the embedded PostgreSQL
    python benchmarks/bench_site.py --dsn postgresql://postgres@127.0.0.1:5432/test

Creates a scratch database on the server (``--dsn``, else the embedded one),
applies the migrations, seeds ``--videos`` published videos in a few categories,
plans, a subscriber with orders and an admin, then requests each page ``--calls``
times in process (httpx's ASGI transport: no sockets, so the time is the server's:
routing, session, queries, template) and prints the median and p95 per page.
The scratch database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app
from app.settings import AppConfig
from luser_db.embedded import start_embedded
from luser_db.migrations import Migrator
from luser_db.testing import create_test_database, drop_test_database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "bench-Passw0rd-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class NoVod:
    """Play URLs without a provider: the page's own work is what is measured."""

    def get(self, name: str | None = None) -> Any:
        return self

    async def play_url(self, media: str, **kw: Any) -> Any:
        from datetime import timedelta

        from app.vod.base import SignedUrl
        from luser_common import utc_now

        return SignedUrl(f"/media/{media}.mp4", utc_now() + timedelta(minutes=10), "tencent")

    async def aclose(self) -> None:
        return None


async def seed(app: Any, videos: int) -> tuple[int, str, str]:
    services = app.state.services
    commerce = services.commerce
    cats = [await services.catalog.create_category(f"分类{i}", f"c{i}") for i in range(6)]
    first = 0
    for n in range(videos):
        video = await services.catalog.create_video(
            {
                "title": f"视频 {n}",
                "description": "描述 " * 20,
                "category_id": cats[n % len(cats)].id,
                "duration_seconds": 600,
                "media_id": f"m{n}",
                "preview_seconds": 30,
                "required_level": 1,
            }
        )
        await services.catalog.publish(video.id)
        first = first or video.id
    plan = await commerce.plans.create(name="月度会员", level=1, duration_days=30, price_fen=1990)
    del plan
    await services.accounts.register(email="reader@example.com", phone=None, password=PASSWORD)
    await services.accounts.create_admin("admin@example.com", PASSWORD)
    return first, "reader@example.com", "admin@example.com"


async def logged_in(app: Any, account: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    token = CSRF.search((await client.get("/login")).text)
    assert token
    r = await client.post(
        "/login", data={"csrf_token": token.group(1), "account": account, "password": PASSWORD}
    )
    assert r.status_code == 303, r.text
    return client


async def time_page(client: httpx.AsyncClient, path: str, calls: int) -> list[float]:
    await client.get(path)  # warm: templates compiled, statements prepared
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        r = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return samples


async def run(args: argparse.Namespace) -> int:
    base = args.dsn or start_embedded()
    url = await asyncio.to_thread(create_test_database, base, "luser_bench_site")
    try:
        await Migrator(url, directory=os.path.join(ROOT, "migrations")).up()
        config = AppConfig.model_validate(
            {
                "env": "bench",
                "database": {"url": url, "max_connections": 5, "min_connections": 1},
                "jwt": {"secret": "bench-jwt-secret-0123456789abcdef"},
            }
        )
        app = create_app(config, providers=NoVod())
        async with app.router.lifespan_context(app):
            first, reader, admin = await seed(app, args.videos)
            reader_user = await app.state.services.accounts.login(reader, PASSWORD, "bench")
            reader_id = reader_user[0].id
            anonymous = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            )
            user, operator = await logged_in(app, reader), await logged_in(app, admin)
            pages = [
                ("home (anonymous)", anonymous, "/"),
                ("home, page 3", anonymous, "/?page=3"),
                ("search", anonymous, "/?q=视频+1"),
                ("video (anonymous)", anonymous, f"/videos/{first}"),
                ("video (preview play)", user, f"/videos/{first}"),
                ("plans", user, "/plans"),
                ("my orders", user, "/me/orders"),
                ("my subscription", user, "/me/subscription"),
                ("console videos", operator, "/console/videos"),
                ("console users", operator, "/console/users"),
                ("console orders", operator, "/console/orders"),
                ("console revenue", operator, "/console/revenue"),
                ("console user", operator, f"/console/users/{reader_id}"),
                ("my API keys", user, "/me/keys"),
            ]
            print(f"{'page':<24}{'median ms':>10}{'p95 ms':>10}")
            worst = 0.0
            for name, client, path in pages:
                samples = sorted(await time_page(client, path, args.calls))
                p95 = samples[int(len(samples) * 0.95) - 1]
                worst = max(worst, p95)
                print(f"{name:<24}{statistics.median(samples):>10.2f}{p95:>10.2f}")
            for client in (anonymous, user, operator):
                await client.aclose()
        print(f"worst p95: {worst:.2f} ms (target < 50 ms)")
        return 0 if worst < 50 else 1
    finally:
        await asyncio.to_thread(drop_test_database, base, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: the embedded one)")
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
