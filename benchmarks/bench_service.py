"""The running service over HTTP on loopback vs a minimal Starlette + raw asyncpg app.

    python benchmarks/bench_service.py                      # local server, else embedded
    python benchmarks/bench_service.py --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/bench_service.py --quick              # 2-second runs, report not written
    python benchmarks/bench_service.py --profile            # + py-spy hot spots of the service
    python benchmarks/bench_service.py --embedded           # the embedded PostgreSQL
    python benchmarks/bench_service.py --hold 600           # only start both, probe by hand

wrk comes from Debian (``apt-get install wrk``), py-spy from PyPI (``pip install py-spy``);
both are optional.

The script creates a scratch database on the server named by ``--dsn`` (default the
local PostgreSQL on 127.0.0.1:5432; the embedded server when that is unreachable),
applies the app's migrations, COPYs ``--rows`` published videos into it and starts
two single-worker uvicorn processes on 127.0.0.1 with identical uvicorn settings:

* ``luser``: ``app.main:create_app`` (LUSER_ENV=production), the real service;
* ``raw``: ``benchmarks.service.raw_app:create_app``, hand-written SQL on an asyncpg
  pool of the same size, answering the same rows in the same envelope.

It checks that both answer the same data, then drives ``GET /api/videos?page=1&size=20``
and ``GET /api/videos/{id}`` (random ids) with wrk (``-t2 -c32 --latency`` and a Lua
script; the asyncio loader of ``benchmarks/service/load.py`` when wrk is missing): a
warm-up per server, then ``--rounds`` runs per server (6 x 5 s), interleaved (A B,
B A, ...). It reports the medians of requests/s, p50 and p99, and CPU time per request
of the server process and of its PostgreSQL backends (found by application_name; far
steadier than req/s when other work shares the machine), plus the luser/raw ratios
(ratio of the medians, and each round's ratio); prints the markdown table, writes it
to ``--out`` with the command and the date, stops the servers and drops the database
(also on SIGINT/SIGTERM). The whole run takes about 2.5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import platform
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median
from typing import Any

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.service import database, load  # noqa: E402
from benchmarks.service.load import Run  # noqa: E402

LIST_PATH = "/api/videos?page=1&size=20"
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "service.md")
TARGETS = ("luser", "raw")


# -- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_settings() -> list[str]:
    """The same uvicorn options for both servers; uvloop/httptools only when installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return [
        "--host",
        "127.0.0.1",
        "--workers",
        "1",
        "--loop",
        loop,
        "--http",
        http,
        "--no-access-log",
        "--log-level",
        "warning",
        # Paced load generators leave connections idle for seconds between requests;
        # uvicorn's default 5 s would close some, and count as errors and reconnects.
        "--timeout-keep-alive",
        "60",
    ]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Any
    base: str  # the PostgreSQL server (maintenance database) URL
    url: str  # the scratch database URL the server uses

    @property
    def application_name(self) -> str:
        return f"bench_{self.name}"

    async def db_cpu_seconds(self) -> float | None:
        """CPU of this server's PostgreSQL backends; None when they cannot be read
        (a remote server, or no permission)."""
        pids = await database.backend_pids(self.base, self.url, self.application_name)
        total = 0.0
        try:
            for pid in pids:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return total if pids else None

    def cpu_seconds(self) -> float:
        """CPU of the server process and any children (user + system)."""
        total = 0.0
        try:
            main = psutil.Process(self.proc.pid)
            for p in [main, *main.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def start_server(name: str, base: str, url: str, pool_size: int, tmp: str) -> Server:
    port = free_port()
    env = dict(os.environ)
    tagged = database.tagged(url, f"bench_{name}")
    if name == "luser":
        target = "app.main:create_app"
        env.update(
            {
                "LUSER_ENV": "production",  # no dev seeding, production logging
                "LUSER__DATABASE__URL": tagged,
                "LUSER__DATABASE__MAX_CONNECTIONS": str(pool_size),
                "LUSER__DATABASE__MIN_CONNECTIONS": str(pool_size),
                "LUSER__JWT__SECRET": secrets.token_urlsafe(32),  # production requires one
            }
        )
    else:
        target = "benchmarks.service.raw_app:create_app"
        env.update({"BENCH_RAW_DSN": tagged, "BENCH_POOL_SIZE": str(pool_size)})
    cmd = [sys.executable, "-m", "uvicorn", target, "--factory", "--port", str(port)]
    log = open(os.path.join(tmp, f"{name}.log"), "w+b")  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        cmd + uvicorn_settings(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return Server(name, port, proc, log, base, url)


async def wait_ready(server: Server, timeout: float = 90) -> None:
    """Until the list endpoint answers 200 (the app may still be under construction)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            status, body = await load.fetch(server.port, LIST_PATH)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:300]!r}"
        except OSError as exc:
            last = repr(exc)
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready after {timeout}s ({last}):\n{server.log_tail()}")


async def compare_responses(servers: dict[str, Server], paths: list[str]) -> list[str]:
    """Differences between the two servers' ``data`` for the same paths (empty: same)."""
    problems = []
    for path in paths:
        answers = {}
        for name, server in servers.items():
            status, body = await load.fetch(server.port, path)
            document = json.loads(body)
            answers[name] = (status, document.get("success"), document.get("data"))
        if answers["luser"] != answers["raw"]:
            luser, raw = answers["luser"], answers["raw"]
            problems.append(f"{path}: luser {str(luser)[:300]} != raw {str(raw)[:300]}")
    return problems


# -- measuring -------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    paths: list[str]
    paths_file: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TARGETS})

    def med(self, target: str, attr: str) -> float:
        return median(getattr(r, attr) for r in self.runs[target])

    def errors(self, target: str) -> int:
        return sum(r.errors for r in self.runs[target])

    def pair_ratios(self) -> list[float]:
        """luser/raw req/s of each round: the two runs of a round are adjacent in time,
        so they saw about the same background load."""
        return [a.rps / b.rps for a, b in zip(self.runs["luser"], self.runs["raw"], strict=True)]


async def one_run(args: argparse.Namespace, server: Server, work: Workload, seconds: float) -> Run:
    before = server.cpu_seconds()
    db_before = await server.db_cpu_seconds()
    if args.loader == "wrk":
        run = await load.run_wrk(
            server.port, work.paths_file, seconds, args.concurrency, args.threads
        )
    else:
        run = await load.run_python(server.port, work.paths, seconds, args.concurrency)
    run.server_cpu = server.cpu_seconds() - before
    db_after = await server.db_cpu_seconds()
    if db_before is not None and db_after is not None:
        run.db_cpu = db_after - db_before
    return run


async def measure(args: argparse.Namespace, servers: dict[str, Server], work: Workload) -> None:
    for name in TARGETS:
        await one_run(args, servers[name], work, args.warmup)
    for round_no in range(args.rounds):
        order = TARGETS if round_no % 2 == 0 else TARGETS[::-1]
        for name in order:
            run = await one_run(args, servers[name], work, args.seconds)
            work.runs[name].append(run)
            print(
                f"  {work.name:22} round {round_no + 1} {name:5} {run.rps:8.0f} req/s"
                f"  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms"
                f"  cpu {run.cpu_ms_per_request:6.3f} ms/req"
                f"  db cpu {run.db_ms_per_request:6.3f} ms/req  errors {run.errors}",
                flush=True,
            )


# -- report ----------------------------------------------------------------------------


def table(works: list[Workload]) -> str:
    head = (
        "| workload | server | req/s | p50 ms | p99 ms | server CPU ms/req | db CPU ms/req"
        " | errors |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for w in works:
        for name in TARGETS:
            rows.append(
                f"| {w.name} | {name} | {w.med(name, 'rps'):.0f} | {w.med(name, 'p50_ms'):.2f}"
                f" | {w.med(name, 'p99_ms'):.2f} | {w.med(name, 'cpu_ms_per_request'):.3f}"
                f" | {w.med(name, 'db_ms_per_request'):.3f} | {w.errors(name)} |"
            )
        rps = w.med("luser", "rps") / w.med("raw", "rps")
        cpu = w.med("raw", "cpu_ms_per_request") / w.med("luser", "cpu_ms_per_request")
        p99 = w.med("luser", "p99_ms") / w.med("raw", "p99_ms")
        db = w.med("raw", "db_ms_per_request") / w.med("luser", "db_ms_per_request")
        rows.append(
            f"| {w.name} | **luser/raw** | **{rps:.2f}** | | {p99:.2f}× | **{cpu:.2f}**"
            f" | {db:.2f} | |"
        )
    text = head + "\n".join(rows) + "\n\n"
    for w in works:
        pairs = w.pair_ratios()
        text += (
            f"- {w.name}: luser/raw req/s per round {' '.join(f'{r:.2f}' for r in pairs)};"
            f" median of the per-round ratios {median(pairs):.2f}\n"
        )
    return text


def environment(
    args: argparse.Namespace, origin: str, pg_version: str, load_before: float
) -> list[str]:
    import starlette
    import uvicorn

    opts = uvicorn_settings()
    return [
        f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()},"
        f" Python {platform.python_version()}, uvicorn {uvicorn.__version__},"
        f" Starlette {starlette.__version__}, loop {opts[opts.index('--loop') + 1]},"
        f" http {opts[opts.index('--http') + 1]}",
        f"- PostgreSQL {pg_version} ({origin}), {args.rows} published videos,"
        f" pool {args.pool_size} connections per server",
        f"- load: {args.loader}, {args.concurrency} connections"
        + (f", {args.threads} threads" if args.loader == "wrk" else "")
        + f", {args.seconds:g}s per run, {args.rounds} interleaved rounds per server"
        f" after a {args.warmup:g}s warm-up; numbers are medians over the rounds",
        f"- machine load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f}"
        " after: other work shared the cores",
    ]


def markdown(
    args: argparse.Namespace, works: list[Workload], env: list[str], notes: list[str]
) -> str:
    command = "python " + shlex.join(["benchmarks/bench_service.py", *sys.argv[1:]])
    return (
        "\n".join(
            [
                "# Service vs raw Starlette + asyncpg",
                "",
                f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with:",
                "",
                f"    {command}",
                "",
                *env,
                "",
                table(works),
                "Ratios: req/s luser/raw (target >= 0.8); p99 luser/raw (lower is better);"
                " CPU per request raw/luser, of the server process and of its PostgreSQL"
                " backends (higher is better, 1.0 = as cheap as raw).",
                "CPU per request is the most stable figure on a shared machine: req/s and"
                " latencies move with whatever else the 2 cores are doing.",
                "",
                *notes,
            ]
        ).rstrip()
        + "\n"
    )


# -- main ------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="luser-bench-service-") as tmp:
        yield tmp


def write_paths(tmp: str, name: str, paths: list[str]) -> str:
    path = os.path.join(tmp, f"{name}.paths")
    with open(path, "w") as f:
        f.write("\n".join(paths) + "\n")
    return path


async def run(args: argparse.Namespace) -> int:
    import asyncpg

    base, origin = await database.server_url(args.dsn, args.embedded)
    conn = await asyncpg.connect(base)
    pg_version = (await conn.fetchval("SHOW server_version")).split()[0]
    await conn.close()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    url = await database.create(base, ROOT)
    servers: dict[str, Server] = {}
    try:
        ids = await database.seed(url, args.rows)
        print(f"database ready in {time.monotonic() - started:.1f}s ({origin}, PG {pg_version})")
        with scratch_dir() as tmp:
            for name in TARGETS:
                servers[name] = start_server(name, base, url, args.pool_size, tmp)
            await asyncio.gather(*(wait_ready(s) for s in servers.values()))
            rng = random.Random(7)
            detail_paths = [f"/api/videos/{i}" for i in ids]
            notes = []
            problems = await compare_responses(
                servers, [LIST_PATH, "/api/videos?page=3&size=50", *rng.sample(detail_paths, 3)]
            )
            if problems:
                notes.append("**Responses differ** (the comparison is not like for like):")
                notes += [f"- {p}" for p in problems]
                print("\n".join(notes))
            else:
                notes.append(
                    "Both servers returned identical `data` for the list (pages 1 and 3)"
                    " and for sampled details before the load."
                )
            if args.hold:
                ports = ", ".join(
                    f"{n} http://127.0.0.1:{s.port} (pid {s.proc.pid})" for n, s in servers.items()
                )
                print(f"holding {args.hold:g}s: {ports}; database {url}", flush=True)
                await asyncio.sleep(args.hold)
                return 0
            works = [
                Workload("list page=1 size=20", [LIST_PATH], write_paths(tmp, "list", [LIST_PATH])),
                Workload(
                    "detail by random id", detail_paths, write_paths(tmp, "detail", detail_paths)
                ),
            ]
            for work in works:
                await measure(args, servers, work)
            if args.profile:
                from benchmarks.service.profile import profile_service

                luser = servers["luser"]
                for work in works:
                    notes += await profile_service(
                        luser.proc.pid,
                        work.name,
                        functools.partial(one_run, args, luser, work),
                        args.seconds,
                        os.path.join(tmp, f"profile-{len(notes)}.txt"),
                        ROOT,
                    )
    finally:
        for server in servers.values():
            server.stop()
        await database.drop(base, url)
    env = environment(args, origin, pg_version, load_before)
    report = markdown(args, works, env, notes)
    print("\n" + report)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report)
        print(f"written to {os.path.relpath(args.out, ROOT)}")
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help=f"PostgreSQL server URL (default {database.DEFAULT_DSN})")
    parser.add_argument(
        "--embedded", action="store_true", help="use the embedded PostgreSQL, not --dsn"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="published videos to seed")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up run length")
    parser.add_argument("--rounds", type=int, default=6, help="measured runs per server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--pool-size", type=int, default=10, help="database pool per server")
    parser.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--out", default=DEFAULT_OUT, help="markdown report ('' = none)")
    parser.add_argument("--quick", action="store_true", help="2-second runs, 2 rounds")
    parser.add_argument(
        "--profile", action="store_true", help="then sample the service with py-spy"
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0,
        metavar="SECONDS",
        help="only set up, keep both servers up this long (manual probing), clean up",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.warmup = 2.0, 2, 1.0
        if args.out == DEFAULT_OUT:  # a sanity run does not replace the recorded results
            args.out = ""
    if args.loader == "auto":
        args.loader = "wrk" if load.wrk_path() else "python"
    return args


async def _main(args: argparse.Namespace) -> int:
    """run(), cancelled on SIGINT/SIGTERM so servers stop and the database is dropped."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await run(args)
    except asyncio.CancelledError:
        print("interrupted: servers stopped, scratch database dropped", file=sys.stderr)
        return 130


def main() -> None:
    sys.exit(asyncio.run(_main(parse_args())))


if __name__ == "__main__":
    main()
