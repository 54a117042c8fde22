"""The accounts' HTTP operations: sign-up and log-in, the caller's own account, admin."""

from __future__ import annotations

from app.accounts.routes import admin, auth, users
from app.web.operation import Operation

OPERATIONS: list[Operation] = [*auth.OPERATIONS, *users.OPERATIONS, *admin.OPERATIONS]
