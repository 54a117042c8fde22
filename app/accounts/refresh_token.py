"""``refresh_tokens``: one row per issued refresh token; only the SHA-256 of the secret is kept."""

from __future__ import annotations

from datetime import datetime

from luser_db import Field, Model


class RefreshToken(Model, table="refresh_tokens"):
    id: int = Field(primary_key=True)
    user_id: int = 0
    family_id: str = ""
    token_hash: str = ""
    expires_at: datetime | None = None
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime | None = None
