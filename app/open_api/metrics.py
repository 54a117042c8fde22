"""Prometheus metrics of the open API, on a registry of their own (one per service).

With several worker processes (``luser serve --workers N``) each worker counts for
itself, and a scrape reaches one of them. ``luser serve`` then points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start:
prometheus_client keeps every value in a per-process file there, and ``render()``
sums the files of all workers (``MultiProcessCollector``). The database layer's
``luser_db_*`` metrics are read from the answering worker's memory, so with several
workers they describe that worker only (docs/deployment.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.db_metrics import DatabaseCollector, register_database_metrics

__all__ = ["CONTENT_TYPE_LATEST", "OpenApiMetrics", "multiprocess_dir"]


def multiprocess_dir() -> str | None:
    """The shared metrics directory when workers run in multiprocess mode, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class OpenApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        register_database_metrics(r)  # luser_db: queries per source/kind, pool gauges
        self.requests = Counter(
            "open_api_requests",
            "Open API calls by ability and HTTP status",
            ["ability", "status"],
            registry=r,
        )
        self.deductions = Counter(
            "open_api_deductions",
            "Deductions by outcome (charged/replayed/refused/failed/refunded)",
            ["outcome"],
            registry=r,
        )
        self.deducted_nano = Counter(
            "open_api_deducted_nano", "Nano-units charged (refunds excluded)", registry=r
        )
        self.overlapped = Counter(
            "open_api_overlapped_calls",
            "Read-only calls whose work ran while the charge committed, by outcome"
            " (served; discarded: the charge was refused or failed)",
            ["outcome"],
            registry=r,
        )
        self.upstream_failures = Counter(
            "open_api_upstream_failures",
            "Failed upstream attempts by channel",
            ["channel"],
            registry=r,
        )
        self.multiprocess = multiprocess_dir() is not None
        self.log_queue_depth = Gauge(
            "open_api_log_queue_depth",
            "Request-log rows waiting to be written",
            registry=r,
            multiprocess_mode="livesum",  # every live worker's queue, added up
        )
        self.logs_dropped = Counter(
            "open_api_logs_dropped",
            "Request-log rows dropped (queue full or write failed)",
            ["reason"],
            registry=r,
        )
        self.logs_written = Counter("open_api_logs_written", "Request-log rows written", registry=r)
        self.log_flush_seconds = Histogram(
            "open_api_log_flush_seconds",
            "Time to write one batch of request-log rows",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.log_flush_retries = Counter(
            "open_api_log_flush_retries",
            "Batch writes retried after a transient failure",
            registry=r,
        )
        self.router_config_version = Gauge(
            "open_api_router_config_version",
            "Version of the routing snapshot in use (the database's config version)",
            registry=r,
            multiprocess_mode="livemin",  # the stalest live worker: what alerts need
        )
        self._queue_depth: Callable[[], float] | None = None

    def track_queue(self, depth: Callable[[], float]) -> None:
        if self.multiprocess:  # a function gauge lives in one process's memory only
            self._queue_depth = depth
        else:
            self.log_queue_depth.set_function(depth)

    def sample_queue(self) -> None:
        """Write the queue depth to the shared files (multiprocess mode; else a no-op)."""
        if self._queue_depth is not None:
            self.log_queue_depth.set(self._queue_depth())

    def track_config_version(self, version: Callable[[], int]) -> None:
        """Follow the refresher's snapshot: it moves with the database's version."""
        if self.multiprocess:
            self.router_config_version.set(version())
        else:
            self.router_config_version.set_function(version)

    def render(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, path=path)
        registry.register(DatabaseCollector())
        return generate_latest(registry)

    @staticmethod
    def process_exited() -> None:
        """Drop this process's live gauges from the shared files (at shutdown)."""
        if multiprocess_dir() is not None:
            _multiprocess.mark_process_dead(os.getpid())
