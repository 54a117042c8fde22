"""Admin: find users, see one in full, enable or disable accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.accounts.overview import user_overview
from app.accounts.routes.users import UserOut
from app.accounts.service import UserFilter
from app.accounts.status import UserStatus
from app.commerce.routes.orders import OrderOut, SubscriptionOut
from app.web.operation import Call, Operation, operation
from app.web.types import Output, QueryInput, Text
from luser_common import BadRequest, NotFound


class UserPage(Output):
    items: list[UserOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class UserSearchQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)
    email: Text | None = Field(None, max_length=254, description="邮箱的一部分")
    phone: Text | None = Field(None, max_length=20, description="手机号的一部分")
    status: Text | None = Field(None, max_length=16, description="active 或 disabled")
    created_from: datetime | None = Field(None, description="注册时间下限 (含), 带时区")
    created_to: datetime | None = Field(None, description="注册时间上限 (不含), 带时区")

    def filter(self) -> UserFilter:
        return UserFilter(
            email=self.email or None,
            phone=self.phone or None,
            status=self.status or None,
            created_from=self.created_from,
            created_to=self.created_to,
        )


class WalletOut(Output):
    user_id: int
    balance: int


class UserDetailOut(Output):
    user: UserOut
    orders: list[OrderOut]
    subscription: SubscriptionOut
    wallet: WalletOut


@operation(
    "GET",
    "/api/admin/users",
    summary="Users: search by email, phone, status and sign-up time",
    tag="admin",
    query=UserSearchQuery,
    response=UserPage,
    access="admin",
    errors=(422,),
)
async def list_users(call: Call) -> dict[str, Any]:
    q: UserSearchQuery = call.query
    page = await call.services.accounts.search(q.page, q.size, q.filter())
    return page.to_dict(lambda user: UserOut.model_validate(user).model_dump())


@operation(
    "GET",
    "/api/admin/users/{id}",
    summary="One user with recent orders, subscription and wallet",
    tag="admin",
    response=UserDetailOut,
    access="admin",
    errors=(404,),
)
async def get_user(call: Call) -> UserDetailOut:
    return UserDetailOut.model_validate(await user_overview(call.services.accounts, call.path_id()))


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


OPERATIONS: list[Operation] = [list_users, get_user, disable_user, enable_user]
