"""/metrics carries the database layer: statements per source and kind, pool gauges."""

from __future__ import annotations

import re

import pytest

from app.open_api.metrics import OpenApiMetrics
from luser_common import ValidationError
from luser_db import Db


@pytest.mark.usefixtures("db_pool")
async def test_query_counts_durations_and_pool_gauges_are_exported() -> None:
    metrics = OpenApiMetrics()
    selects = 'luser_db_queries_total{kind="select",source="default"}'
    before = _value(metrics.render().decode(), selects)
    await Db.query_int("select 1")
    await Db.query_int("select 2")
    with pytest.raises(ValidationError):
        await Db.execute("select 1 / 0")
    text = metrics.render().decode()
    assert _value(text, selects) == before + 3
    assert _value(text, 'luser_db_query_errors_total{kind="select",source="default"}') >= 1
    assert _value(text, 'luser_db_query_seconds_count{kind="select",source="default"}') >= 3
    assert 'luser_db_query_seconds_bucket{kind="select",le="0.001",source="default"}' in text
    assert _value(text, 'luser_db_pool_connections{source="default",state="size"}') >= 1
    assert _value(text, 'luser_db_pool_connections{source="default",state="in_use"}') == 0
    assert 'luser_db_pool_connections{source="default",state="waiting"} 0.0' in text


def _value(text: str, series: str) -> float:
    match = re.search(re.escape(series) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0
