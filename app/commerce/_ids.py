"""Business and channel numbers: readable, time-ordered, random, never reused.

``P20261121083000a1b2c3d4e5f6`` is 27 characters of ``[0-9A-Za-z]``: inside
both Alipay's (64, ``[0-9A-Za-z_]``) and WeChat Pay's (6-32) alphabets. The
database's UNIQUE keys make reuse impossible, not just unlikely.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from app.payments.clock import BEIJING

__all__ = ["new_number"]


def new_number(prefix: str) -> str:
    """``prefix`` + Beijing time to the second + 12 random hex digits."""
    stamp = datetime.now(UTC).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return f"{prefix}{stamp}{secrets.token_hex(6)}"
