"""Instructions per request, the service vs raw Starlette + asyncpg, counted by callgrind.

    python benchmarks/bench_service_instructions.py         # local server, else embedded
    python benchmarks/bench_service_instructions.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

Requests per second on a shared 2-core machine move with whatever else runs; the number
of CPU instructions the server executes per request does not. This script drives both
ASGI apps in-process (no sockets, no HTTP parser: the part that is the same for both is
left out, so the ratio is of the code that differs) under ``valgrind --tool=callgrind``,
each twice: with ``--small`` and ``--large`` requests after start-up. The difference of
the two totals divided by the difference of the request counts is the per-request cost,
start-up and shutdown cancelling out. The same row set, the same paths, the same
database; valgrind comes from Debian (``apt-get install valgrind``). About 6 minutes.

The app runs with the production config (``LUSER_ENV=production``, as the HTTP benchmark
does) and a pool of 10 connections; the raw app as in ``bench_service.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.service import database  # noqa: E402

WORKLOADS = {"list": ("/api/videos", b"page=1&size=20"), "detail": ("/api/videos/{id}", b"")}
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "service-instructions.md")


# -- the driven process (run under valgrind) --------------------------------------------


async def _call(app: object, path: str, query: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]

    await app(scope, receive, send)  # type: ignore[operator]
    return status


async def drive(target: str, workload: str, requests: int, url: str, ids: list[int]) -> None:
    """Start ``target``'s app, serve ``requests`` requests of ``workload``, shut down."""
    if target == "raw":
        os.environ["BENCH_RAW_DSN"] = url
        from benchmarks.service.raw_app import create_app
    else:
        os.environ.update(
            {
                "LUSER_ENV": "production",
                "LUSER__DATABASE__URL": url,
                "LUSER__DATABASE__MIN_CONNECTIONS": "10",
                "LUSER__DATABASE__MAX_CONNECTIONS": "10",
                "LUSER__JWT__SECRET": secrets.token_urlsafe(32),
            }
        )
        from app.main import create_app  # type: ignore[assignment]
    app = create_app()
    events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, str]:
        return await events.get()

    async def send(message: dict[str, str]) -> None:
        if not message["type"].endswith(".complete"):
            raise RuntimeError(f"lifespan: {message}")
        started.set()

    await events.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "state": {}}, receive, send))
    await started.wait()
    path, query = WORKLOADS[workload]
    for i in range(requests):
        status = await _call(app, path.format(id=ids[i % len(ids)]), query)
        if status != 200:
            raise RuntimeError(f"{target} {workload}: HTTP {status}")
    await events.put({"type": "lifespan.shutdown"})
    await lifespan


# -- the driver ---------------------------------------------------------------------------


def count_instructions(target: str, workload: str, requests: int, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/out",
            sys.executable,
            os.path.abspath(__file__),
            "--drive",
            target,
            workload,
            str(requests),
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{target} {workload} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return int(found.group(1))


async def prepare(args: argparse.Namespace) -> tuple[str, str, list[int]]:
    base, _ = await database.server_url(args.dsn, args.embedded)
    url = await database.create(base, ROOT)
    ids = await database.seed(url, args.rows)
    return base, url, ids[:2000]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL")
    parser.add_argument("--rows", type=int, default=10_000, help="published videos to load")
    parser.add_argument("--small", type=int, default=100, help="requests in the short run")
    parser.add_argument("--large", type=int, default=500, help="requests in the long run")
    parser.add_argument("--out", default=DEFAULT_OUT, help="markdown report to write")
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, workload, requests = args.drive
        ids = [int(i) for i in os.environ["BENCH_IDS"].split(",")]
        asyncio.run(drive(target, workload, int(requests), os.environ["BENCH_URL"], ids))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    base, url, ids = asyncio.run(prepare(args))
    env = dict(os.environ, BENCH_URL=url, BENCH_IDS=",".join(map(str, ids)))
    rows = []
    try:
        for workload in WORKLOADS:
            per_request = {}
            for target in ("luser", "raw"):
                small = count_instructions(target, workload, args.small, env)
                large = count_instructions(target, workload, args.large, env)
                per_request[target] = (large - small) / (args.large - args.small)
                print(f"{workload} {target}: {per_request[target]:,.0f} instructions/request")
            ratio = per_request["raw"] / per_request["luser"]
            rows.append(
                f"| {workload} | {per_request['luser']:,.0f} | {per_request['raw']:,.0f}"
                f" | **{ratio:.2f}** |"
            )
    finally:
        asyncio.run(database.drop(base, url))
    command = "python " + " ".join(
        [os.path.relpath(__file__, ROOT), *[a for a in sys.argv[1:] if a != "--drive"]]
    )
    report = "\n".join(
        [
            "# Service vs raw Starlette + asyncpg: instructions per request",
            "",
            f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with:",
            "",
            f"    {command}",
            "",
            f"- Python {sys.version.split()[0]}, {args.rows} published videos, in-process ASGI"
            f" calls, callgrind, ({args.large} - {args.small}) requests per measurement",
            "",
            "| workload | luser instr/req | raw instr/req | raw/luser |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "raw/luser: the raw app's cost as a share of the service's (1.0 = as cheap as"
            " raw). Counts are deterministic: the same code and data give the same totals"
            " whatever else the machine is doing.",
            "",
        ]
    )
    print(report)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
