"""Accounts: registration, login, tokens, logout, password change, disabled users."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from app.container import LoginLimiter
from app.settings import AppConfig
from luser_common import LimitExceeded
from luser_db import Db

from .conftest import PASSWORD, Account, MakeAccount, error_code, unique_email, unique_phone


async def test_register_with_email_and_with_phone(api: httpx.AsyncClient) -> None:
    email = unique_email().upper()
    r = await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    user = r.json()["data"]
    assert user["email"] == email.lower() and user["role"] == "user" and user["status"] == "active"
    assert "password_hash" not in user
    phone = unique_phone()
    r = await api.post("/api/auth/register", json={"phone": f"+86 {phone}", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["phone"] == phone

    # The format docs/service.md shows: "+86 138 0013 8000" (grouped); login accepts it too.
    grouped = unique_phone()
    typed = f"+86 {grouped[:3]} {grouped[3:7]} {grouped[7:]}"
    r = await api.post("/api/auth/register", json={"phone": typed, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["phone"] == grouped
    r = await api.post("/api/auth/login", json={"account": typed, "password": PASSWORD})
    assert r.status_code == 200, r.text


async def test_password_is_stored_as_argon2id(api: httpx.AsyncClient) -> None:
    email = unique_email()
    await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    rec = await Db.find_first("select password_hash from users where email = ?", email)
    assert rec is not None and rec["password_hash"].startswith("$argon2id$")


async def test_duplicate_registration_is_409(api: httpx.AsyncClient) -> None:
    email = unique_email()
    body = {"email": email, "password": PASSWORD}
    assert (await api.post("/api/auth/register", json=body)).status_code == 201
    r = await api.post("/api/auth/register", json={**body, "email": email.upper()})
    assert r.status_code == 409 and error_code(r) == "DUPLICATE"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@b", "password": PASSWORD}, "email"),
        ({"phone": "12345678901", "password": PASSWORD}, "phone"),
        ({"phone": "1380013800", "password": PASSWORD}, "phone"),
        ({"password": PASSWORD}, "email"),
        ({"email": "x@example.com", "phone": "13800138000", "password": PASSWORD}, "email"),
        ({"email": "x@example.com", "password": "short1"}, "password"),
        ({"email": "x@example.com", "password": "onlyletters"}, "password"),
        ({"email": "x@example.com", "password": "1234567890"}, "password"),
        ({"email": "x@example.com", "password": "password1"}, "password"),
        ({"email": "x@example.com", "password": "a" * 129 + "1"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD, "role": "admin"}, "role"),
        ({"email": "x\u0000@example.com", "password": PASSWORD}, "email"),
    ],
)
async def test_bad_registrations_are_422(
    api: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    r = await api.post("/api/auth/register", json=body)
    assert r.status_code == 422, r.text
    assert error_code(r) == "VALIDATION_ERROR"
    assert r.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "password, reason",
    [
        ("{account}-2024", "不能包含账号名"),
        ("password123", "最常见的泄露密码"),
        ("ab1ab1ab1ab1", "至少需要 4 个不同的字符"),
        ("short1", "至少需要 8 位"),
        ("onlyletters", "字母和数字"),
    ],
)
async def test_weak_password_message_says_why(
    api: httpx.AsyncClient, password: str, reason: str
) -> None:
    # "密码过于简单, 请换一个" alone did not tell the user what to change.
    email = unique_email()
    password = password.format(account=email.split("@")[0].upper())
    r = await api.post("/api/auth/register", json={"email": email, "password": password})
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"]["message"]
    assert r.json()["error"]["field"] == "password"


async def test_validation_messages_are_chinese(api: httpx.AsyncClient) -> None:
    # pydantic's "Field required" and raw patterns used to reach users.
    r = await api.post("/api/auth/login", json={"password": "x"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == "account" and error["message"] == "参数校验失败: account 必填"
    r = await api.post("/api/auth/register", json={"email": "a@example.com", "password": 5})
    assert r.json()["error"]["message"] == "参数校验失败: password 必须是字符串"
    r = await api.post("/api/auth/register", json={"email": "a@example.com", "nope": 1})
    messages = {d["field"]: d["message"] for d in r.json()["error"]["details"]}
    assert messages == {"password": "必填", "nope": "是不允许的字段"}


async def test_malformed_wrong_type_and_oversized_bodies(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and error_code(r) == "DESERIALIZATION_ERROR"
    r = await api.post(
        "/api/auth/register", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    r = await api.post(
        "/api/auth/register", content=b"email=x", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415
    huge = b'{"email": "' + b"a" * 200_000 + b'@example.com", "password": "x"}'
    r = await api.post(
        "/api/auth/register", content=huge, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and error_code(r) == "PAYLOAD_TOO_LARGE"


async def test_login_returns_tokens_and_me_works(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account(phone=True)
    r = await api.get("/api/users/me", headers=acct.headers)
    assert r.status_code == 200
    assert r.json()["data"]["id"] == acct.id and r.json()["data"]["phone"] == acct.account
    rec = await Db.find_first("select token_hash from refresh_tokens where user_id = ?", acct.id)
    assert rec is not None and len(rec["token_hash"]) == 64
    assert acct.refresh_token not in rec["token_hash"]  # only the SHA-256 is stored


async def test_wrong_password_and_unknown_user_look_the_same(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    wrong = await api.post(
        "/api/auth/login", json={"account": acct.account, "password": "Wrong-pass1"}
    )
    unknown = await api.post(
        "/api/auth/login", json={"account": unique_email(), "password": "Wrong-pass1"}
    )
    garbage = await api.post(
        "/api/auth/login", json={"account": "nobody", "password": "Wrong-pass1"}
    )
    for r in (wrong, unknown, garbage):
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"
        assert r.json()["error"]["message"] == wrong.json()["error"]["message"]


async def test_login_attempts_are_rate_limited(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    body = {"account": acct.account, "password": "Wrong-pass1"}
    # make_account's own login took one of the five attempts
    statuses = [(await api.post("/api/auth/login", json=body)).status_code for _ in range(4)]
    assert statuses == [401] * 4
    r = await api.post("/api/auth/login", json={**body, "password": acct.password})
    assert r.status_code == 429 and error_code(r) == "LIMIT_EXCEEDED"
    assert int(r.headers["retry-after"]) >= 1


async def test_missing_forged_and_expired_access_tokens(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    r = await api.get("/api/users/me")
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.headers["www-authenticate"].startswith("Bearer")
    forged = jwt.encode(
        {
            "sub": str(acct.id),
            "typ": "access",
            "iss": "luser",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        "not-the-secret-but-long-enough-0123456789",
        algorithm="HS256",
    )
    r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"
    r = await api.get("/api/users/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"
    expired = jwt.encode(
        {
            "sub": str(acct.id),
            "typ": "access",
            "iss": "luser",
            "iat": int(time.time()) - 600,
            "exp": int(time.time()) - 300,
        },
        "test-jwt-secret-0123456789abcdef",
        algorithm="HS256",
    )
    r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and error_code(r) == "TOKEN_EXPIRED"
    unknown = jwt.encode(
        {
            "sub": "999999999",
            "typ": "access",
            "iss": "luser",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        "test-jwt-secret-0123456789abcdef",
        algorithm="HS256",
    )
    r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {unknown}"})
    assert r.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    r = await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 200, r.text
    second = r.json()["data"]["refresh_token"]
    assert second != acct.refresh_token
    assert (
        await api.get(
            "/api/users/me", headers={"Authorization": f"Bearer {r.json()['data']['access_token']}"}
        )
    ).status_code == 200
    # the old token again: theft assumed, the whole login is revoked
    r = await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"
    r = await api.post("/api/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 401


async def test_unknown_and_expired_refresh_tokens(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    r = await api.post("/api/auth/refresh", json={"refresh_token": "nope"})
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"
    acct = await make_account()
    await Db.execute(
        "update refresh_tokens set expires_at = now() - interval '1 minute' where user_id = ?",
        acct.id,
    )
    r = await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 401 and error_code(r) == "TOKEN_EXPIRED"


async def test_logout_revokes_the_refresh_token(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    r = await api.post("/api/auth/logout", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 200 and r.json()["data"] == {"logged_out": True}
    r = await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 401


async def test_change_password_revokes_sessions(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    acct = await make_account()
    new = "N3w-password-x"
    r = await api.post(
        "/api/users/me/password",
        headers=acct.headers,
        json={"old_password": "Wrong-pass1", "new_password": new},
    )
    assert r.status_code == 401 and error_code(r) == "INVALID_CREDENTIALS"
    r = await api.post(
        "/api/users/me/password",
        headers=acct.headers,
        json={"old_password": acct.password, "new_password": "weak"},
    )
    assert r.status_code == 422
    r = await api.post(
        "/api/users/me/password",
        headers=acct.headers,
        json={"old_password": acct.password, "new_password": new},
    )
    assert r.status_code == 200, r.text
    assert (
        await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    ).status_code == 401
    assert (await api.get("/api/users/me", headers=acct.headers)).status_code == 401
    r = await api.post("/api/auth/login", json={"account": acct.account, "password": new})
    assert r.status_code == 200
    token = r.json()["data"]["access_token"]
    assert (
        await api.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200


async def test_update_profile(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    acct = await make_account()
    r = await api.patch("/api/users/me", headers=acct.headers, json={"nickname": "小明"})
    assert r.status_code == 200 and r.json()["data"]["nickname"] == "小明"
    r = await api.patch("/api/users/me", headers=acct.headers, json={"nickname": ""})
    assert r.status_code == 422


async def test_disabled_user_is_refused_everywhere(
    api: httpx.AsyncClient, make_account: MakeAccount, admin: Account
) -> None:
    acct = await make_account()
    r = await api.post(f"/api/admin/users/{acct.id}/disable", headers=admin.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "disabled"
    r = await api.get("/api/users/me", headers=acct.headers)  # still-valid JWT
    assert r.status_code == 403 and error_code(r) == "ACCOUNT_DISABLED"
    r = await api.post("/api/auth/login", json={"account": acct.account, "password": acct.password})
    assert r.status_code == 403 and error_code(r) == "ACCOUNT_DISABLED"
    r = await api.post("/api/auth/refresh", json={"refresh_token": acct.refresh_token})
    assert r.status_code == 401
    r = await api.post(f"/api/admin/users/{acct.id}/enable", headers=admin.headers)
    assert r.status_code == 200
    assert (await api.get("/api/users/me", headers=acct.headers)).status_code == 200


async def test_admin_routes_refuse_users(
    api: httpx.AsyncClient, make_account: MakeAccount, admin: Account
) -> None:
    acct = await make_account()
    r = await api.post(f"/api/admin/users/{admin.id}/disable", headers=acct.headers)
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    r = await api.post(f"/api/admin/users/{admin.id}/disable", headers=admin.headers)
    assert r.status_code == 400  # not yourself
    r = await api.post("/api/admin/users/999999999/disable", headers=admin.headers)
    assert r.status_code == 404


async def test_login_limiter_shared_through_redis(redis_url: str) -> None:
    config = AppConfig.model_validate({"redis": {"url": redis_url}})
    limiter = LoginLimiter.for_config(config)
    account = unique_email()
    try:
        for _ in range(5):
            await limiter.hit(account, "10.1.1.1")
        with pytest.raises(LimitExceeded) as caught:
            await limiter.hit(account, "10.1.1.1")
        assert int(caught.value.headers["Retry-After"]) >= 1
        await limiter.hit(account, "10.1.1.2")  # another client IP has its own bucket
    finally:
        await limiter.reset(account, "10.1.1.1")
        await limiter.reset(account, "10.1.1.2")
        await limiter.close()
