"""Accounts: registration, login, refresh-token rotation, logout, password change.

Refresh tokens are random secrets; the database keeps only their SHA-256. Each
login starts a *family*; a refresh consumes the presented token and issues the
next one in the family. Presenting a token that was already consumed means it
was copied, so the whole family is revoked (RFC 6819 section 5.2.2.3).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.accounts.credentials import (
    account_name,
    check_password_strength,
    normalize_account,
    normalize_email,
    normalize_phone,
)
from app.accounts.errors import AccountDisabled, InvalidCredentials
from app.accounts.models import User
from app.accounts.refresh_token import RefreshToken
from app.accounts.security import (
    AccessTokens,
    LoginLimiter,
    burn_password_check,
    hash_password_async,
    new_refresh_secret,
    sha256_hex,
    verify_password_async,
)
from app.accounts.status import UserRole, UserStatus
from app.settings import JwtConfig
from luser_common import InvalidToken, NotFound, Page, TokenExpired, ValidationError, utc_now
from luser_db import Db, like_contains, transaction

USER_STATUSES = tuple(UserStatus)


@dataclass(frozen=True)
class UserFilter:
    """Admin user search; every field is optional and they combine with AND.

    ``email`` and ``phone`` match a part of the stored value (case-insensitive for
    email); ``created_from`` is inclusive and ``created_to`` exclusive.
    """

    email: str | None = None
    phone: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def check(self) -> None:
        if self.status is not None and self.status not in USER_STATUSES:
            raise ValidationError("状态必须是 active 或 disabled", field="status")
        for name in ("created_from", "created_to"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValidationError("时间必须带时区", field=name)
        start, end = self.created_from, self.created_to
        if start is not None and end is not None and start >= end:
            raise ValidationError(
                "注册时间范围无效: 开始时间必须早于结束时间", field="created_from"
            )


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"


class Accounts:
    def __init__(self, jwt_config: JwtConfig, limiter: LoginLimiter | None = None) -> None:
        self.jwt_config = jwt_config
        self.access = AccessTokens(jwt_config)
        self.limiter = limiter or LoginLimiter()

    # -- registration ------------------------------------------------------------

    async def register(
        self,
        *,
        email: str | None,
        phone: str | None,
        password: str,
        nickname: str = "",
        role: str = UserRole.USER,
    ) -> User:
        if bool(email) == bool(phone):
            raise ValidationError("请提供邮箱或手机号之一", field="email")
        email_n = normalize_email(email) if email else None
        phone_n = normalize_phone(phone) if phone else None
        check_password_strength(password, account=account_name(email_n, phone_n))
        user = User(
            email=email_n,
            phone=phone_n,
            password_hash=await hash_password_async(password),
            nickname=nickname or _default_nickname(email_n, phone_n),
            role=role,
            status=UserStatus.ACTIVE,
        )
        await user.save()  # a taken email/phone surfaces as DuplicateError (409)
        return user

    async def create_admin(self, account: str, password: str, nickname: str = "") -> User:
        """Create an admin, or promote (and reset the password of) an existing account."""
        kind, value = normalize_account(account)
        existing = await _find_by_account(kind, value)
        if existing is None:
            return await self.register(
                email=value if kind == "email" else None,
                phone=value if kind == "phone" else None,
                password=password,
                nickname=nickname,
                role=UserRole.ADMIN,
            )
        check_password_strength(password, account=account_name(existing.email, existing.phone))
        existing.role = UserRole.ADMIN
        existing.status = UserStatus.ACTIVE
        existing.password_hash = await hash_password_async(password)
        await existing.update()
        return existing

    # -- login / tokens ----------------------------------------------------------

    async def login(self, account: str, password: str, client_ip: str) -> tuple[User, TokenPair]:
        try:
            kind, value = normalize_account(account)
        except ValidationError:
            await self.limiter.hit(account, client_ip)
            await burn_password_check(password)
            raise InvalidCredentials() from None
        # Keyed by the normalised account: "+86 138..." and "138..." share one bucket.
        await self.limiter.hit(value, client_ip)
        user = await _find_by_account(kind, value)
        if user is None:
            await burn_password_check(password)
            raise InvalidCredentials()
        if not await verify_password_async(password, user.password_hash):
            raise InvalidCredentials()
        if not user.is_active:
            raise AccountDisabled()
        pair = await self._issue(user, family_id=uuid.uuid4().hex)
        return user, pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        async with transaction():
            row = await RefreshToken.find_first(
                "select * from refresh_tokens where token_hash = ? for update",
                sha256_hex(refresh_token),
            )
            failure = await self._check_refresh(row)
            if failure is None:
                assert row is not None
                user = await User.find_by_id(row.user_id)
                failure = await self._check_owner(row, user)
                if failure is None:
                    assert user is not None
                    await _consume(row.id)
                    return await self._issue(user, family_id=row.family_id)
        # Raised after the transaction so a family revocation is committed, not rolled back.
        raise failure

    @staticmethod
    async def _check_owner(row: RefreshToken, user: User | None) -> Exception | None:
        if user is not None and user.is_active:
            return None
        await _revoke_family(row.family_id)
        return AccountDisabled() if user else InvalidToken()

    async def _check_refresh(self, row: RefreshToken | None) -> Exception | None:
        if row is None:
            return InvalidToken("刷新令牌无效")
        if row.used_at is not None:
            await _revoke_family(row.family_id)  # reuse of a rotated token: assume theft
            return InvalidToken("刷新令牌已被使用, 该登录已失效")
        if row.revoked_at is not None:
            return InvalidToken("刷新令牌已注销")
        if row.expires_at is not None and row.expires_at <= utc_now():
            return TokenExpired("刷新令牌已过期")
        return None

    async def logout(self, refresh_token: str) -> None:
        """Revoke the login the refresh token belongs to; unknown tokens are ignored."""
        row = await RefreshToken.find_first(
            "select * from refresh_tokens where token_hash = ?", sha256_hex(refresh_token)
        )
        if row is not None:
            await _revoke_family(row.family_id)

    async def logout_everywhere(self, user_id: int) -> int:
        return await Db.execute(
            "update refresh_tokens set revoked_at = now() where user_id = ? and revoked_at is null",
            user_id,
        )

    async def _issue(self, user: User, family_id: str) -> TokenPair:
        secret = new_refresh_secret()
        ttl = self.jwt_config.refresh_ttl_seconds
        await RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=sha256_hex(secret),
            expires_at=utc_now() + timedelta(seconds=ttl),
        ).save()
        return TokenPair(
            access_token=self.access.encode(user.id, user.role),
            refresh_token=secret,
            expires_in=self.access.ttl_seconds,
            refresh_expires_in=ttl,
        )

    # -- authenticated requests --------------------------------------------------

    async def authenticate(self, access_token: str) -> User:
        """The active user an access token names; disabled users and stale tokens are refused."""
        claims = self.access.decode(access_token)
        user = await User.find_by_id(claims.user_id)
        if user is None:
            raise InvalidToken()
        if not user.is_active:
            raise AccountDisabled()
        changed = user.password_changed_at
        if changed is not None and claims.issued_at_ms < int(changed.timestamp() * 1000):
            raise InvalidToken("密码已修改, 请重新登录")
        return user

    async def change_password(self, user: User, old_password: str, new_password: str) -> None:
        if not await verify_password_async(old_password, user.password_hash):
            raise InvalidCredentials("原密码错误")
        if old_password == new_password:
            raise ValidationError("新密码不能与原密码相同", field="new_password")
        check_password_strength(
            new_password, field="new_password", account=account_name(user.email, user.phone)
        )
        async with transaction():
            user.password_hash = await hash_password_async(new_password)
            user.password_changed_at = utc_now()
            await user.update()
            await self.logout_everywhere(user.id)

    # -- administration ------------------------------------------------------------

    async def search(self, page: int, size: int, where: UserFilter | None = None) -> Page[User]:
        """A page of users, newest first, matching ``where``."""
        where = where or UserFilter()
        where.check()
        query = User.query()
        if where.email:
            query = query.where("email ilike ?", like_contains(where.email))
        if where.phone:
            query = query.where("phone like ?", like_contains(where.phone))
        if where.status:
            query = query.where("status = ?", where.status)
        if where.created_from is not None:
            query = query.where("created_at >= ?", where.created_from)
        if where.created_to is not None:
            query = query.where("created_at < ?", where.created_to)
        return await query.order_by("id desc").paginate(page, size)

    async def user(self, user_id: int) -> User:
        found = await User.find_by_id(user_id)
        if found is None:
            raise NotFound("用户不存在", field="user_id", details={"user_id": user_id})
        return found

    async def set_status(self, user_id: int, status: UserStatus) -> User | None:
        user = await User.find_by_id(user_id)
        if user is None:
            return None
        async with transaction():
            user.status = status
            await user.update()
            if status != UserStatus.ACTIVE:
                await self.logout_everywhere(user.id)
        return user


async def _find_by_account(kind: str, value: str) -> User | None:
    # lower(email) is what the unique index covers (migration 0001).
    where = "lower(email) = ?" if kind == "email" else "phone = ?"
    return await User.find_first(f"select * from users where {where}", value)


async def _consume(token_id: int) -> None:
    await Db.execute(
        "update refresh_tokens set used_at = now(), revoked_at = now() where id = ?", token_id
    )


async def _revoke_family(family_id: str) -> None:
    await Db.execute(
        "update refresh_tokens set revoked_at = coalesce(revoked_at, now()) where family_id = ?",
        family_id,
    )


def _default_nickname(email: str | None, phone: str | None) -> str:
    if email:
        return email.split("@", 1)[0][:32]
    assert phone is not None
    return f"用户{phone[-4:]}"
