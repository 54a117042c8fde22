"""Issue 19 item 4: the log tables' keys are Citus-compatible (every primary and
unique key includes the shard key: user_id, request_id for quota_deductions), and the
hot reads still use an index."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.open_api.logs import LogFilter, log_query, usage_query

SHARDED = ("router_logs", "router_log_usage")
SHARD_KEY = "user_id"

# Every primary-key or unique index on the two tables and on their partitions, with
# its columns (pg_index.indkey, in key order).
_UNIQUE_INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE (x.indisunique OR x.indisprimary)
  AND (t.relname = ANY($1::text[])
       OR t.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY($1::regclass[])))
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def test_every_unique_key_of_the_log_tables_includes_the_shard_key(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch(_UNIQUE_INDEXES, list(SHARDED))
    tables = {r["table_name"] for r in rows}
    # Both parents and at least one router_logs partition have a key to check.
    assert set(SHARDED) <= tables
    assert any(t.startswith("router_logs_") for t in tables)
    missing = [(r["index_name"], r["columns"]) for r in rows if SHARD_KEY not in r["columns"]]
    assert missing == []
    keys = {r["table_name"]: r["columns"] for r in rows if r["index_name"].endswith("_pkey")}
    assert keys["router_logs"] == ["user_id", "created_at", "id"]
    assert keys["router_log_usage"] == ["user_id", "bucket", "token_id", "ability"]


async def test_every_unique_key_of_quota_deductions_includes_the_request_id(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch(_UNIQUE_INDEXES, ["quota_deductions"])
    # The parent and its monthly partitions (migration 0046).
    assert any(r["table_name"].startswith("quota_deductions_") for r in rows)
    assert [r["index_name"] for r in rows if "request_id" not in r["columns"]] == []
    keys = {r["table_name"]: r["columns"] for r in rows if r["index_name"].endswith("_pkey")}
    assert keys["quota_deductions"] == ["request_id", "created_at"]


async def _plan(conn: asyncpg.Connection, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    """The plan's nodes, flattened. Sequential scans are priced out: the test tables
    are small, and the question is whether an index serves the query without a sort."""
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    nodes, todo = [], [json.loads(raw)[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


async def test_a_partners_log_page_reads_the_primary_key_backwards_without_sorting(
    conn: asyncpg.Connection,
) -> None:
    sql, args = log_query(LogFilter(user_id=42)).limit(50).to_sql()
    nodes = await _plan(conn, sql, args)
    scans = [n for n in nodes if n.get("Relation Name", "").startswith("router_logs")]
    assert scans, nodes
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    for scan in scans:
        assert scan["Node Type"] == "Index Scan", scan
        assert scan["Index Name"].endswith("_pkey"), scan
        assert scan["Scan Direction"] == "Backward", scan
        assert "user_id" in scan["Index Cond"], scan


async def test_a_partners_usage_reads_one_range_of_the_rollups_primary_key(
    conn: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    sql, args = usage_query(42, now - timedelta(days=30), now, tz="Asia/Shanghai")
    nodes = await _plan(conn, sql, args)
    scans = [n for n in nodes if n.get("Relation Name") == "router_log_usage"]
    assert len(scans) == 1, nodes
    assert scans[0]["Node Type"] in {"Index Scan", "Index Only Scan"}, scans[0]
    assert scans[0]["Index Name"] == "router_log_usage_pkey", scans[0]
    assert "user_id" in scans[0]["Index Cond"] and "bucket" in scans[0]["Index Cond"], scans[0]
