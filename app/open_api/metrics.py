"""Prometheus metrics of the open API, on a registry of their own (one per service)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.db_metrics import register_database_metrics

__all__ = ["CONTENT_TYPE_LATEST", "OpenApiMetrics"]


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
        self.log_queue_depth = Gauge(
            "open_api_log_queue_depth", "Request-log rows waiting to be written", registry=r
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
            "open_api_router_config_version", "Version of the routing snapshot in use", registry=r
        )

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.log_queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
