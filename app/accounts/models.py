"""``users``: accounts (created by migration 0001, extended by 0010)."""

from __future__ import annotations

from datetime import datetime

from app.accounts.status import UserRole, UserStatus
from luser_db import Field, Model


class User(Model, table="users"):
    id: int = Field(primary_key=True)
    email: str | None = None
    phone: str | None = None
    password_hash: str = ""
    nickname: str | None = None
    role: str = UserRole.USER
    status: str = UserStatus.ACTIVE
    balance: int = 0
    password_changed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE
