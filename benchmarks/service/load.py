"""Load generators: wrk with a Lua script when installed, else a bounded asyncio loader.

Both keep ``concurrency`` keep-alive connections busy for ``seconds``, each request
GETting a random path of a list, and report requests, errors and latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass

LUA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paths.lua")


@dataclass
class Run:
    """One load run against one server."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float = 0.0  # CPU seconds the server process used during the run
    db_cpu: float | None = None  # CPU seconds of its PostgreSQL backends (None: unknown)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu / max(1, self.requests) * 1000

    @property
    def db_ms_per_request(self) -> float:
        if self.db_cpu is None:
            return float("nan")
        return self.db_cpu / max(1, self.requests) * 1000


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_command(
    port: int, paths_file: str, seconds: float, concurrency: int, threads: int
) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        LUA_SCRIPT,
        f"http://127.0.0.1:{port}",
        "--",
        paths_file,
    ]


async def run_wrk(
    port: int, paths_file: str, seconds: float, concurrency: int, threads: int = 2
) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *wrk_command(port, paths_file, seconds, concurrency, threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    summary = None
    for line in out.decode().splitlines():
        if line.startswith("{"):
            summary = json.loads(line)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()}{out.decode()}")
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        requests=summary["requests"] - summary["status"],
        errors=errors,
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )


# -- the fallback: HTTP/1.1 keep-alive on asyncio streams (lighter than an HTTP client) ----


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    """One request on a fresh connection (readiness checks, response comparison)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_python(port: int, paths: list[str], seconds: float, concurrency: int) -> Run:
    latencies: list[float] = []
    counts = {"ok": 0, "err": 0}
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                path = paths[rng.randrange(len(paths))]
                started = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                counts["ok" if status == 200 else "err"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    latencies.sort()
    return Run(
        requests=counts["ok"],
        errors=counts["err"],
        seconds=time.perf_counter() - started,
        p50_ms=_percentile(latencies, 0.5),
        p99_ms=_percentile(latencies, 0.99),
    )
