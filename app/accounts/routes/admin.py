"""Admin: enable or disable accounts."""

from __future__ import annotations

from app.accounts.routes.users import UserOut
from app.accounts.status import UserStatus
from app.web.operation import Call, Operation, operation
from luser_common import BadRequest, NotFound


async def _set_status(call: Call, status: UserStatus) -> UserOut:
    user_id = call.path_id()
    if user_id == call.current_user.id and status != UserStatus.ACTIVE:
        raise BadRequest("不能禁用自己的账号")
    user = await call.services.accounts.set_status(user_id, status)
    if user is None:
        raise NotFound("用户不存在")
    return UserOut.model_validate(user)


@operation(
    "POST",
    "/api/admin/users/{id}/disable",
    summary="Disable an account",
    tag="admin",
    response=UserOut,
    access="admin",
    errors=(404,),
)
async def disable_user(call: Call) -> UserOut:
    return await _set_status(call, UserStatus.DISABLED)


@operation(
    "POST",
    "/api/admin/users/{id}/enable",
    summary="Enable an account",
    tag="admin",
    response=UserOut,
    access="admin",
    errors=(404,),
)
async def enable_user(call: Call) -> UserOut:
    return await _set_status(call, UserStatus.ACTIVE)


OPERATIONS: list[Operation] = [disable_user, enable_user]
