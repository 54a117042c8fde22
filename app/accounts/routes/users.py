"""The current user: profile and password."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.web.operation import Call, Operation, operation
from app.web.types import Input, Output, Text


class UserOut(Output):
    id: int
    email: str | None
    phone: str | None
    nickname: str | None
    role: str
    status: str
    created_at: datetime | None


class ProfileBody(Input):
    nickname: Text = Field(min_length=1, max_length=32)


class ChangePasswordBody(Input):
    old_password: Text = Field(min_length=1, max_length=256)
    new_password: Text = Field(min_length=1, max_length=256)


class ChangedOut(Output):
    changed: bool


@operation(
    "GET", "/api/users/me", summary="The current user", tag="users", response=UserOut, access="user"
)
async def me(call: Call) -> UserOut:
    return UserOut.model_validate(call.current_user)


@operation(
    "PATCH",
    "/api/users/me",
    summary="Update the current user's profile",
    tag="users",
    body=ProfileBody,
    response=UserOut,
    access="user",
)
async def update_me(call: Call) -> UserOut:
    user = call.current_user
    user.nickname = call.body.nickname
    await user.update()
    return UserOut.model_validate(user)


@operation(
    "POST",
    "/api/users/me/password",
    summary="Change the password (logs out every session)",
    tag="users",
    body=ChangePasswordBody,
    response=ChangedOut,
    access="user",
)
async def change_password(call: Call) -> ChangedOut:
    body: ChangePasswordBody = call.body
    await call.services.accounts.change_password(
        call.current_user, body.old_password, body.new_password
    )
    return ChangedOut(changed=True)


OPERATIONS: list[Operation] = [me, update_me, change_password]
