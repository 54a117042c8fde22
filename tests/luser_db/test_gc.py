"""The collector pause around bulk row building restores the previous state on every path."""

from __future__ import annotations

import gc

import pytest

from luser_db._gc import BULK_ROWS, bulk, paused


def test_bulk_pauses_only_large_builds_and_restores() -> None:
    seen: list[bool] = []
    bulk(range(BULK_ROWS - 1), lambda: seen.append(gc.isenabled()))
    bulk(range(BULK_ROWS), lambda: seen.append(gc.isenabled()))
    assert seen == [True, False]
    assert gc.isenabled()


def test_pause_restores_after_an_error_and_respects_a_disabled_gc() -> None:
    with pytest.raises(ZeroDivisionError), paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
