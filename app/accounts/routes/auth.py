"""Registration, login, token refresh and logout."""

from __future__ import annotations

from pydantic import Field

from app.accounts.routes.users import UserOut
from app.web.operation import Call, Operation, operation
from app.web.types import Input, Output, Text


class RegisterBody(Input):
    email: Text | None = Field(None, max_length=254, description="邮箱 (与 phone 二选一)")
    phone: Text | None = Field(None, max_length=20, description="中国大陆手机号 (与 email 二选一)")
    password: Text = Field(min_length=1, max_length=256)
    nickname: Text = Field("", max_length=32)


class LoginBody(Input):
    account: Text = Field(min_length=1, max_length=254, description="邮箱或手机号")
    password: Text = Field(min_length=1, max_length=256)


class RefreshBody(Input):
    refresh_token: Text = Field(min_length=1, max_length=256)


class TokenOut(Output):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    refresh_expires_in: int


class LoginOut(TokenOut):
    user: UserOut


class LogoutOut(Output):
    logged_out: bool


@operation(
    "POST",
    "/api/auth/register",
    summary="Register with an email or a mainland mobile number",
    tag="auth",
    body=RegisterBody,
    response=UserOut,
    status=201,
    errors=(409,),
)
async def register(call: Call) -> UserOut:
    body: RegisterBody = call.body
    user = await call.services.accounts.register(
        email=body.email, phone=body.phone, password=body.password, nickname=body.nickname
    )
    return UserOut.model_validate(user)


@operation(
    "POST",
    "/api/auth/login",
    summary="Log in: an access JWT and a refresh token",
    tag="auth",
    body=LoginBody,
    response=LoginOut,
    errors=(401, 403, 429),
)
async def login(call: Call) -> LoginOut:
    body: LoginBody = call.body
    user, pair = await call.services.accounts.login(body.account, body.password, call.client_ip)
    return LoginOut(user=UserOut.model_validate(user), **pair.__dict__)


@operation(
    "POST",
    "/api/auth/refresh",
    summary="Rotate a refresh token for a new token pair",
    tag="auth",
    body=RefreshBody,
    response=TokenOut,
    errors=(401, 403),
)
async def refresh(call: Call) -> TokenOut:
    pair = await call.services.accounts.refresh(call.body.refresh_token)
    return TokenOut.model_validate(pair)


@operation(
    "POST",
    "/api/auth/logout",
    summary="Revoke the login a refresh token belongs to",
    tag="auth",
    body=RefreshBody,
    response=LogoutOut,
)
async def logout(call: Call) -> LogoutOut:
    await call.services.accounts.logout(call.body.refresh_token)
    return LogoutOut(logged_out=True)


OPERATIONS: list[Operation] = [register, login, refresh, logout]
