"""Prometheus metrics of the database layer, fed by ``luser_db.on_query``, ``pool_stats``
and the query cache's ``luser_db.cache.stats()``.

One process-wide tally (installed once, on first use) counts statements and their
durations per data source and statement kind; a collector added to any registry
reads it, and the pool gauges, at scrape time. So the numbers are the process's,
however many apps (tests) it builds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

import luser_db
from luser_db import QueryEvent

__all__ = ["BUCKETS", "DatabaseCollector", "register_database_metrics"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Tally:
    """Counts, error counts, duration sums and cumulative-bucket counts per (source, kind)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[tuple[str, str], list[Any]] = {}
        self.installed = False

    def __call__(self, event: QueryEvent) -> None:
        key = (event.source, event.kind)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0, 0, 0.0, [0] * len(BUCKETS)]
        row[0] += 1
        if event.error is not None:
            row[1] += 1
        row[2] += event.duration
        buckets = row[3]
        for i, bound in enumerate(BUCKETS):
            if event.duration <= bound:
                buckets[i] += 1

    def install(self) -> None:
        with self.lock:
            if not self.installed:
                luser_db.on_query(self)
                self.installed = True


_tally = _Tally()


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Any]:
        queries = CounterMetricFamily(
            "luser_db_queries", "Statements run, by data source and kind", labels=["source", "kind"]
        )
        errors = CounterMetricFamily(
            "luser_db_query_errors",
            "Statements that failed, by data source and kind",
            labels=["source", "kind"],
        )
        seconds = HistogramMetricFamily(
            "luser_db_query_seconds",
            "Statement duration, by data source and kind",
            labels=["source", "kind"],
        )
        for (source, kind), (count, failed, total, buckets) in sorted(_tally.rows.items()):
            queries.add_metric([source, kind], count)
            errors.add_metric([source, kind], failed)
            pairs = [(str(b), n) for b, n in zip(BUCKETS, buckets, strict=True)]
            seconds.add_metric([source, kind], [*pairs, ("+Inf", count)], total)
        yield queries
        yield errors
        yield seconds
        pool = GaugeMetricFamily(
            "luser_db_pool_connections",
            "Pool connections by state (size, in_use, idle, max) and tasks waiting for one",
            labels=["source", "state"],
        )
        for stats in luser_db.pool_stats():
            for state in ("size", "in_use", "idle", "waiting", "max_size"):
                pool.add_metric([stats.source, state], getattr(stats, state))
        yield pool
        yield from _cache_metrics()


def _cache_metrics() -> Iterator[Any]:
    stats = luser_db.cache.stats()
    hits = CounterMetricFamily(
        "luser_db_cache_hits", "Query cache hits, by cache name", labels=["cache"]
    )
    for name, n in sorted(stats.hits.items()):
        hits.add_metric([name], n)
    misses = CounterMetricFamily(
        "luser_db_cache_misses", "Query cache misses, by cache name", labels=["cache"]
    )
    for name, n in sorted(stats.misses.items()):
        misses.add_metric([name], n)
    yield hits
    yield misses
    yield CounterMetricFamily(
        "luser_db_cache_evictions",
        "Query cache entries dropped: stale, expired or pushed out of the LRU",
        value=stats.evictions,
    )
    yield CounterMetricFamily(
        "luser_db_cache_invalidations",
        "Committed writes that evicted cached reads of their tables",
        value=stats.invalidations,
    )
    yield CounterMetricFamily(
        "luser_db_cache_errors",
        "Cache calls served as plain queries because the cache store failed",
        value=stats.errors,
    )


def register_database_metrics(registry: CollectorRegistry) -> None:
    """Add the database metrics to ``registry`` (and start counting, once per process)."""
    _tally.install()
    registry.register(DatabaseCollector())
