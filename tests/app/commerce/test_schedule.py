"""The subscription rule, as a pure function (no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.commerce.schedule import Grant, Piece, consumed_seconds, schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400


def at(days: float) -> datetime:
    return T0 + timedelta(seconds=int(days * DAY))


def spans(pieces: list[Piece]) -> list[tuple[int, int, datetime, datetime]]:
    return [(p.grant_id, p.level, p.starts_at, p.ends_at) for p in pieces]


def test_nothing_bought_nothing_scheduled() -> None:
    assert schedule([]) == []


def test_same_level_again_extends() -> None:
    pieces = schedule([Grant(1, 1, at(0), 30 * DAY), Grant(2, 1, at(10), 30 * DAY)])
    assert spans(pieces) == [(1, 1, at(0), at(30)), (2, 1, at(30), at(60))]


def test_higher_level_takes_effect_at_once_and_lower_time_resumes_after() -> None:
    pieces = schedule([Grant(1, 1, at(0), 30 * DAY), Grant(2, 3, at(10), 7 * DAY)])
    assert spans(pieces) == [
        (1, 1, at(0), at(10)),
        (2, 3, at(10), at(17)),
        (1, 1, at(17), at(37)),
    ]


def test_lower_level_waits_for_the_higher_one() -> None:
    pieces = schedule([Grant(1, 3, at(0), 30 * DAY), Grant(2, 1, at(5), 10 * DAY)])
    assert spans(pieces) == [(1, 3, at(0), at(30)), (2, 1, at(30), at(40))]


def test_a_gap_when_everything_ran_out() -> None:
    pieces = schedule([Grant(1, 1, at(0), 1 * DAY), Grant(2, 2, at(5), 1 * DAY)])
    assert spans(pieces) == [(1, 1, at(0), at(1)), (2, 2, at(5), at(6))]


def test_revoked_grant_pulls_the_queue_forward() -> None:
    grants = [Grant(1, 1, at(0), 30 * DAY), Grant(2, 1, at(1), 30 * DAY)]
    used = consumed_seconds(schedule(grants), 1, at(3), round_up=False)
    assert used == 3 * DAY
    pieces = schedule([Grant(1, 1, at(0), used), Grant(2, 1, at(1), 30 * DAY)])
    assert spans(pieces) == [(1, 1, at(0), at(3)), (2, 1, at(3), at(33))]


def test_consumed_rounds_partial_seconds() -> None:
    pieces = [Piece(1, 1, T0, T0 + timedelta(days=1))]
    now = T0 + timedelta(seconds=10, microseconds=1)
    assert consumed_seconds(pieces, 1, now) == 11
    assert consumed_seconds(pieces, 1, now, round_up=False) == 10


grant_lists = st.lists(
    st.tuples(st.integers(1, 5), st.integers(0, 100 * DAY), st.integers(0, 60 * DAY)),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(grant_lists)
def test_properties(raw: list[tuple[int, int, int]]) -> None:
    grants = [
        Grant(i + 1, level, T0 + timedelta(seconds=start), duration)
        for i, (level, start, duration) in enumerate(raw)
    ]
    pieces = schedule(grants)
    # Every grant gets exactly its duration, never before it was bought.
    for g in grants:
        mine = [p for p in pieces if p.grant_id == g.id]
        assert sum(((p.ends_at - p.starts_at) for p in mine), timedelta()) == timedelta(
            seconds=g.duration_seconds
        )
        assert all(p.starts_at >= g.granted_at for p in mine)
    # Pieces never overlap, and never run a lower level while a higher one is waiting.
    for a, b in itertools.pairwise(pieces):
        assert a.ends_at <= b.starts_at
    for p in pieces:
        for g in grants:
            waiting = g.granted_at <= p.starts_at and g.level > p.level
            if waiting:
                done = max((q.ends_at for q in pieces if q.grant_id == g.id), default=None)
                assert done is None or done <= p.starts_at
