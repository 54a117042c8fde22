"""The subscription rule as a pure function: grants in, access periods out.

Each grant (one paid order) holds a level and a duration, and becomes usable
when it is granted. At every instant the user consumes the usable grant with
the **highest level**; equal levels are used first-come first-served. So:

* buying the same level again extends the window (it queues behind the first);
* a higher level takes effect at once; the lower-level time not yet used is
  paused and resumes when the higher level runs out (nothing paid for is lost);
* a lower level bought during a higher one waits for it.

Refunds shorten a grant (never below what was already used), which pulls the
grants queued behind it forward. Times are ``datetime``; durations are whole
seconds as ``int`` (no float anywhere).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Grant", "Piece", "consumed_seconds", "schedule"]


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    level: int
    granted_at: datetime
    duration_seconds: int


@dataclass(frozen=True, slots=True)
class Piece:
    """``[starts_at, ends_at)`` during which grant ``grant_id`` is being used."""

    grant_id: int
    level: int
    starts_at: datetime
    ends_at: datetime


def schedule(grants: Iterable[Grant]) -> list[Piece]:
    """Lay the grants out on the timeline (see the module docstring for the rule)."""
    arrivals = sorted(grants, key=lambda g: (g.granted_at, g.id))
    remaining = {g.id: timedelta(seconds=g.duration_seconds) for g in arrivals}
    ready: list[tuple[int, datetime, int, Grant]] = []
    pieces: list[Piece] = []
    i, now = 0, arrivals[0].granted_at if arrivals else None
    while now is not None and (i < len(arrivals) or ready):
        if not ready:
            now = max(now, arrivals[i].granted_at)
        while i < len(arrivals) and arrivals[i].granted_at <= now:
            g = arrivals[i]
            heapq.heappush(ready, (-g.level, g.granted_at, g.id, g))
            i += 1
        grant = ready[0][3]
        end = now + remaining[grant.id]
        if i < len(arrivals):
            end = min(end, arrivals[i].granted_at)
        if end > now:
            _append(pieces, Piece(grant.id, grant.level, now, end))
            remaining[grant.id] -= end - now
            now = end
        if remaining[grant.id] <= timedelta(0):
            heapq.heappop(ready)
    return pieces


def _append(pieces: list[Piece], piece: Piece) -> None:
    last = pieces[-1] if pieces else None
    if last is not None and last.grant_id == piece.grant_id and last.ends_at == piece.starts_at:
        pieces[-1] = Piece(last.grant_id, last.level, last.starts_at, piece.ends_at)
    else:
        pieces.append(piece)


def consumed_seconds(
    pieces: Sequence[Piece], grant_id: int, now: datetime, *, round_up: bool = True
) -> int:
    """Whole seconds of grant ``grant_id`` already used at ``now``.

    Rounded up, the grant still covers ``now`` (a shortened grant keeps running);
    rounded down, it ends at or before ``now`` (a revoked grant stops at once).
    """
    used = timedelta(0)
    for piece in pieces:
        if piece.grant_id == grant_id and piece.starts_at < now:
            used += min(piece.ends_at, now) - piece.starts_at
    whole = used // timedelta(seconds=1)
    return whole + (1 if round_up and used % timedelta(seconds=1) else 0)
