"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from app.web.operation import Call, Operation, operation
from app.web.types import Output
from luser_common import DatabaseUnavailable
from luser_db import Db


class HealthOut(Output):
    status: Literal["ok"]


class ReadyOut(Output):
    status: Literal["ready"]
    database: Literal["ok"]


@operation(
    "GET", "/health", summary="Liveness: the process answers", tag="health", response=HealthOut
)
async def health(call: Call) -> HealthOut:
    return HealthOut(status="ok")


@operation(
    "GET",
    "/ready",
    summary="Readiness: the database is reachable",
    tag="health",
    response=ReadyOut,
    errors=(503,),
)
async def ready(call: Call) -> ReadyOut:
    try:
        await Db.find_first("select 1 as ok")
    except Exception as exc:  # any failure here means "not ready", never a 500
        raise DatabaseUnavailable("数据库不可达") from exc
    return ReadyOut(status="ready", database="ok")


OPERATIONS: list[Operation] = [health, ready]
