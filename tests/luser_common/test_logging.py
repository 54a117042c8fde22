"""configure_logging: plain and JSON lines carrying the request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from luser_common.utils import configure_logging

from .conftest import make_app


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # A service app running in this session set server.log_level on "luser": these
    # tests are about the root configuration alone.
    service = logging.getLogger("luser")
    service_level = service.level
    service.setLevel(logging.NOTSET)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    service.setLevel(service_level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_logging_includes_request_id(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    with TestClient(make_app()) as c:
        c.get("/missing", headers={"X-Request-ID": "log-req-1"})
    records = [json.loads(line) for line in _lines(stream)]
    access = [r for r in records if r["logger"] == "luser.access"]
    assert access and access[0]["request_id"] == "log-req-1"
    assert access[0]["status"] == 404 and access[0]["path"] == "/missing"
    assert isinstance(access[0]["duration_ms"], float)
    errors = [r for r in records if r["logger"] == "luser.errors"]
    assert errors and errors[0]["request_id"] == "log-req-1" and errors[0]["level"] == "INFO"
    assert all(r["ts"].endswith("Z") for r in records)


def test_json_logging_outside_request_and_exceptions(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging(logging.DEBUG, json=True, stream=stream)
    log = logging.getLogger("luser.test")
    log.debug("hello %s", "世界", extra={"order_id": 7})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in _lines(stream))
    assert first == {
        **first,
        "message": "hello 世界",
        "request_id": "-",
        "order_id": 7,
        "level": "DEBUG",
    }
    assert "ValueError: bad" in second["exc_info"]


def test_plain_logging_and_reconfigure(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=io.StringIO())
    configure_logging("INFO", stream=stream)  # replaces, does not duplicate
    with TestClient(make_app()) as c:
        c.get("/rid", headers={"X-Request-ID": "plain-1"})
    lines = [line for line in _lines(stream) if "luser.access" in line]
    assert len(lines) == 1
    assert "[plain-1]" in lines[0] and "GET /rid 200" in lines[0]
    assert sum(1 for h in logging.getLogger().handlers if getattr(h, "_luser_handler", False)) == 1
