"""The gateway's latency overhead over HTTP: the service in its own uvicorn process, wrk.

``/open/v1/videos/{id}/play_url`` (key check, routing snapshot, durable deduction, log
enqueue, upstream call) against ``/bare/videos/{id}/play_url`` (the same catalog lookup
and upstream call, nothing else), both served by one uvicorn process, both calling the
same Tencent VOD stub on 127.0.0.1 (run by this process, which otherwise only waits for
wrk), each request with the next of ``concurrency`` keys (one wallet per key).

Two phases, with ``concurrency`` wrk connections throughout:

1. saturated: back-to-back requests; the most requests/s each endpoint sustains;
2. paced: every connection pauses a random (exponential) time between requests so the
   offered load is ``load`` x the bare endpoint's saturated rate for both endpoints;
   rounds interleaved; p50/p99 per round, overhead = open - bare of the same round.

Latency at saturation is queueing (32 connections / requests per second), not work, so
the overhead target (p99 < 5 ms at 32 concurrent clients) is checked on phase 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import asyncpg
import psutil
from pydantic import SecretStr

from app.open_api import manage, routing_config
from app.open_api.secretbox import SecretBox
from app.sandbox.vod import PROXY_ENV_VARS, TencentVodStub
from app.settings import AppConfig
from benchmarks.bench_service import free_port, uvicorn_settings
from benchmarks.service import load

ROOT = Path(__file__).resolve().parents[2]
LUA = str(Path(__file__).with_name("paced.lua"))
MEDIA_ID = "528589078170002"


@dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: dict[str, float] | None = None  # CPU per request by process group


class CpuMeter:
    """CPU seconds of the service process, of this process (the stub) and of PostgreSQL.

    PostgreSQL's share is every local ``postgres`` process (backends, WAL writer,
    checkpointer); 0 when the server is elsewhere or its processes are not readable.
    """

    def __init__(self, server_pid: int) -> None:
        self._groups = {"service": [server_pid], "stub": [os.getpid()]}

    def read(self) -> dict[str, float]:
        groups = {**self._groups, "postgres": _postgres_pids()}
        return {name: sum(_cpu(pid) for pid in pids) for name, pids in groups.items()}


def _postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


async def wrk(url: str, keys_file: str, seconds: int, connections: int, delay_ms: float) -> WrkRun:
    cmd = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        LUA,
        url,
        "--",
        keys_file,
        f"{delay_ms:.3f}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    summary = next((json.loads(x) for x in out.decode().splitlines() if x.startswith("{")), None)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()}{out.decode()}")
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkRun(
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
    )


async def _prepare(
    pool: asyncpg.Pool, config: AppConfig, pepper: str, connections: int
) -> tuple[int, int, list[str]]:
    """Wallets, one video, a channel on the stub and the ability; (video, channel, keys)."""
    async with pool.acquire() as conn:
        user_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO users (email, password_hash, balance) "
                "SELECT 'http' || g || '-' || md5(random()::text) || '@bench.io', 'x', $1 "
                "FROM generate_series(1, $2) g RETURNING id",
                10**18,
                connections,
            )
        ]
        video_id = await conn.fetchval(
            "INSERT INTO videos (title, provider, media_id, media_status, status, published_at)"
            " VALUES ('http', 'tencent', $1, 'ready', 'published', now()) RETURNING id",
            MEDIA_ID,
        )
    open_api = config.open_api
    box = SecretBox.from_config(open_api.channel_secret_key.get_secret_value(), pepper.encode())
    tencent = config.vod.tencent
    channel = await routing_config.save_channel(
        {
            "name": "bench-http",
            "provider": "tencent",
            "base_url": f"http://{tencent.endpoint}",
            "credentials": {
                "secret_id": tencent.secret_id,
                "secret_key": tencent.secret_key.get_secret_value(),
            },
        },
        box,
    )
    await routing_config.save_ability("default", "video.play_url", channel["id"])
    keys = [
        (await manage.create_token(u, manage.TokenSpec(), pepper=pepper.encode())).key
        for u in user_ids
    ]
    return int(video_id), int(channel["id"]), keys


async def _wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{Path(log.name).read_text()[-3000:]}")
        try:
            status, _ = await load.fetch(port, path)
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError(f"server not ready:\n{Path(log.name).read_text()[-3000:]}")


async def bench_overhead_http(
    url: str,
    pool: asyncpg.Pool,
    *,
    pepper: str,
    connections: int = 32,
    seconds: int = 8,
    rounds: int = 3,
    load_factors: tuple[float, ...] | list[float] = (0.25, 0.5),
    synchronous_commit: bool = True,
) -> None:
    if shutil.which("wrk") is None:
        print("hot path (HTTP) skipped: wrk is not installed (apt-get install wrk)")
        return
    for name in PROXY_ENV_VARS:
        os.environ.pop(name, None)
    stub = TencentVodStub()
    stub.start()
    stub.add_media(MEDIA_ID)
    config = AppConfig.model_validate(
        {
            "database": {"url": url, "max_connections": 10, "min_connections": 10},
            "server": {"gc_freeze": True},
            "open_api": {
                "token_pepper": pepper,
                "config_poll_interval_seconds": 3600,
                "deduction_synchronous_commit": synchronous_commit,
            },
            "vod": {"tencent": stub.config().model_dump()},
        }
    )
    video_id, channel_id, keys = await _prepare(pool, config, pepper, connections)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="luser-bench-open-api-") as tmp:
        keys_file = os.path.join(tmp, "keys.txt")
        Path(keys_file).write_text("\n".join(keys) + "\n")
        env = dict(os.environ, BENCH_OPEN_API_CONFIG=_config_json(config))
        log = open(os.path.join(tmp, "server.log"), "w+b")  # noqa: SIM115 - closed below
        cmd = [sys.executable, "-m", "uvicorn", "benchmarks.open_api.server_app:create_app"]
        proc = subprocess.Popen(
            [*cmd, "--factory", "--port", str(port), *uvicorn_settings()],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        targets = {
            "bare": (f"{base}/bare/videos/{video_id}/play_url", "-"),
            "open API": (f"{base}/open/v1/videos/{video_id}/play_url", keys_file),
        }
        try:
            await _wait_ready(port, f"/bare/videos/{video_id}/play_url", proc, log)
            for target, keys_arg in targets.values():  # warm caches, SDK clients, statements
                await wrk(target, keys_arg, 2, connections, 0)
            meter = CpuMeter(proc.pid)
            await _report(targets, connections, seconds, rounds, load_factors, meter)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            stub.stop()
            await routing_config.delete_channel(channel_id)  # later phases route without it


def _config_json(config: AppConfig) -> str:
    """The config as JSON with secrets in clear (model_dump_json masks them)."""

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [reveal(v) for v in value]
        return value

    return json.dumps(reveal(config.model_dump()), default=str)


async def _report(
    targets: dict[str, tuple[str, str]],
    connections: int,
    seconds: int,
    rounds: int,
    load_factors: tuple[float, ...] | list[float],
    meter: CpuMeter,
) -> None:
    saturated: dict[str, WrkRun] = {}
    for _ in range(2):
        for name, (target, keys_arg) in targets.items():
            before = meter.read()
            run = await wrk(target, keys_arg, seconds, connections, 0)
            after = meter.read()
            requests = run.rps * seconds
            run.cpu_ms = {k: (after[k] - before[k]) / requests * 1000 for k in after}
            if name not in saturated or run.rps > saturated[name].rps:
                saturated[name] = run
    for name, run in saturated.items():
        cpu = "  ".join(f"{k} {v:.2f}" for k, v in (run.cpu_ms or {}).items())
        print(
            f"hot path HTTP  {name:<9}: {run.rps:>7,.0f} req/s saturated"
            f"  (p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms: queueing; errors {run.errors})"
            f"\n               CPU ms/request: {cpu}"
        )
    ratio = saturated["open API"].rps / saturated["bare"].rps
    print(f"               open API / bare = {ratio:.2f}")
    for load_factor in load_factors:
        await _paced(targets, connections, seconds, rounds, load_factor * saturated["bare"].rps)


async def _paced(
    targets: dict[str, tuple[str, str]],
    connections: int,
    seconds: int,
    rounds: int,
    offered: float,
) -> None:
    mean_delay_ms = connections / offered * 1000
    paced: dict[str, list[WrkRun]] = {name: [] for name in targets}
    for i in range(rounds):
        order = list(targets.items()) if i % 2 == 0 else list(reversed(targets.items()))
        for name, (target, keys_arg) in order:
            paced[name].append(await wrk(target, keys_arg, seconds, connections, mean_delay_ms))
    for name, runs in paced.items():
        print(
            f"hot path paced {name:<9}: {median(r.rps for r in runs):>7,.0f} req/s"
            f"  p50 {median(r.p50_ms for r in runs):6.2f} ms"
            f"  p99 {median(r.p99_ms for r in runs):6.2f} ms  errors {sum(r.errors for r in runs)}"
        )
    p50 = [o.p50_ms - b.p50_ms for o, b in zip(paced["open API"], paced["bare"], strict=True)]
    p99 = [o.p99_ms - b.p99_ms for o, b in zip(paced["open API"], paced["bare"], strict=True)]
    verdict = "OK" if median(p99) < 5 else "ABOVE TARGET"
    print(
        f"               overhead p50 {median(p50):+.2f} ms  p99 {median(p99):+.2f} ms"
        f" at {connections} connections, {offered:,.0f} req/s offered; median of {rounds}"
        f" interleaved rounds (per round p99 {' '.join(f'{x:+.2f}' for x in p99)});"
        f" target p99 < 5 ms  {verdict}"
    )
