"""Account states, as stored in ``users`` (the CHECK constraints allow exactly these)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["UserRole", "UserStatus"]


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"
