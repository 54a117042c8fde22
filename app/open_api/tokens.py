"""API keys: generation, peppered hashing, validation with an in-memory cache.

Only ``HMAC-SHA256(pepper, key)`` is stored, so a database dump holds no usable
key and lookups are one equality probe on a unique index. Validated tokens are
cached by hash; the cache is invalidated on every change made through this node
(disable, delete, quota/expiry/allow-list edits) and on ``open_api_tokens``
notifications from other nodes; entries also expire after a TTL. Expiry is
compared with the clock on every call, never cached as a verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.open_api.access import IpAllowList
from app.open_api.errors import (
    AbilityNotAllowed,
    IpNotAllowed,
    OpenTokenDisabled,
    OpenTokenExpired,
    OpenTokenInvalid,
    OwnerDisabled,
)
from luser_common import utc_now
from luser_db import Db

__all__ = [
    "AccessTracker",
    "Expired",
    "Invalid",
    "TokenInfo",
    "TokenStore",
    "Valid",
    "generate_key",
    "hash_key",
    "key_hint",
]

KEY_PREFIX = "sk-"
_KEY_RE = re.compile(r"^sk-[A-Za-z0-9_-]{32,128}$")


def generate_key() -> str:
    """A new plaintext key: ``sk-`` + 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str, pepper: bytes) -> bytes:
    """The 32-byte value stored for ``key``."""
    return hmac.new(pepper, key.encode(), hashlib.sha256).digest()


def key_hint(key: str) -> str:
    """A display form that identifies a key without revealing it."""
    return f"{key[:7]}…{key[-4:]}"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the hot path needs to know about a key (a cached snapshot)."""

    token_id: int
    user_id: int
    name: str
    group: str
    status: str
    owner_status: str
    quota_limit: int
    used_quota: int
    expired_time: datetime | None
    allowed_abilities: frozenset[str] | None
    ip_allow: IpAllowList

    def allows_ability(self, ability: str) -> bool:
        return self.allowed_abilities is None or ability in self.allowed_abilities


@dataclass(frozen=True, slots=True)
class Valid:
    info: TokenInfo


@dataclass(frozen=True, slots=True)
class Expired:
    info: TokenInfo


InvalidReason = Literal["missing", "malformed", "unknown", "disabled", "owner_disabled"]


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: InvalidReason
    info: TokenInfo | None = None


Outcome = Valid | Expired | Invalid

_LOAD_SQL = """
SELECT t.id, t.user_id, t.name, t.status, t.quota_limit, t.used_quota, t.expired_time,
       t.allowed_abilities, t.allowed_ips, u.status AS owner_status,
       coalesce(g.group_name, 'default') AS group_name
FROM api_tokens t
JOIN users u ON u.id = t.user_id
LEFT JOIN group_members g ON g.user_id = t.user_id
WHERE t.key_hash = $1
"""


@dataclass(slots=True)
class _Entry:
    info: TokenInfo | None  # None caches "no such key"
    loaded_at: float


class TokenStore:
    """Validates keys; owns the token cache and its invalidation."""

    def __init__(
        self,
        pepper: bytes,
        *,
        ttl_seconds: float = 60.0,
        max_size: int = 100_000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._pepper = pepper
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock or (lambda: utc_now())
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_token: dict[int, bytes] = {}
        self._by_user: dict[int, set[bytes]] = {}
        # Bumped by every invalidation: a load that raced one is not cached.
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def hash(self, key: str) -> bytes:
        return hash_key(key, self._pepper)

    async def validate(self, key: str | None) -> Outcome:
        """Valid / Expired / Invalid for a presented key; reads SQL only on a cache miss."""
        if not key:
            return Invalid("missing")
        if not _KEY_RE.match(key):
            return Invalid("malformed")
        info = await self._lookup(self.hash(key))
        if info is None:
            return Invalid("unknown")
        if info.status != "enabled":
            return Invalid("disabled", info)
        if info.owner_status != "active":
            return Invalid("owner_disabled", info)
        if info.expired_time is not None and info.expired_time <= self._clock():
            return Expired(info)
        return Valid(info)

    validate_token = validate  # the name OPEN_API.md uses

    async def authorize(self, key: str | None, ability: str, client_ip: str | None) -> TokenInfo:
        """Every check of the open API, or the matching AppError."""
        info = await self.authenticate(key)
        self.check_access(info, ability, client_ip)
        return info

    async def authenticate(self, key: str | None) -> TokenInfo:
        """Status, owner and expiry checks, or the matching AppError."""
        outcome = await self.validate(key)
        if isinstance(outcome, Expired):
            raise OpenTokenExpired()
        if isinstance(outcome, Invalid):
            if outcome.reason == "disabled":
                raise OpenTokenDisabled()
            if outcome.reason == "owner_disabled":
                raise OwnerDisabled()
            raise OpenTokenInvalid()
        return outcome.info

    @staticmethod
    def check_access(info: TokenInfo, ability: str, client_ip: str | None) -> None:
        """The key's ability and IP/CIDR allow-lists."""
        if not info.allows_ability(ability):
            raise AbilityNotAllowed(details={"ability": ability})
        if not info.ip_allow.allows(client_ip):
            raise IpNotAllowed(details={"ip": client_ip})

    # -- cache ---------------------------------------------------------------------

    async def _lookup(self, key_hash: bytes) -> TokenInfo | None:
        entry = self._cache.get(key_hash)
        if entry is not None and time.monotonic() - entry.loaded_at < self._ttl:
            self.hits += 1
            return entry.info
        self.misses += 1
        generation = self._generation
        info = await self._load(key_hash)
        if generation == self._generation:
            self._store(key_hash, info)
        return info

    async def _load(self, key_hash: bytes) -> TokenInfo | None:
        row = await Db.find_first(_LOAD_SQL, key_hash)
        if row is None:
            return None
        abilities = row["allowed_abilities"]
        return TokenInfo(
            token_id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            group=row["group_name"],
            status=row["status"],
            owner_status=row["owner_status"],
            quota_limit=row["quota_limit"],
            used_quota=row["used_quota"],
            expired_time=row["expired_time"],
            allowed_abilities=None if abilities is None else frozenset(abilities),
            ip_allow=IpAllowList.parse(row["allowed_ips"]),
        )

    def _store(self, key_hash: bytes, info: TokenInfo | None) -> None:
        self._forget(key_hash)
        self._cache[key_hash] = _Entry(info, time.monotonic())
        if info is not None:
            self._by_token[info.token_id] = key_hash
            self._by_user.setdefault(info.user_id, set()).add(key_hash)
        while len(self._cache) > self._max_size:
            self._forget(next(iter(self._cache)))

    def _forget(self, key_hash: bytes) -> None:
        entry = self._cache.pop(key_hash, None)
        if entry is None or entry.info is None:
            return
        self._by_token.pop(entry.info.token_id, None)
        hashes = self._by_user.get(entry.info.user_id)
        if hashes is not None:
            hashes.discard(key_hash)
            if not hashes:
                del self._by_user[entry.info.user_id]

    def invalidate_hash(self, key_hash: bytes) -> None:
        self._generation += 1
        self._forget(key_hash)

    def invalidate_token(self, token_id: int) -> None:
        self._generation += 1
        key_hash = self._by_token.get(token_id)
        if key_hash is not None:
            self._forget(key_hash)

    def invalidate_user(self, user_id: int) -> None:
        self._generation += 1
        for key_hash in list(self._by_user.get(user_id, ())):
            self._forget(key_hash)

    def clear(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._by_token.clear()
        self._by_user.clear()

    def on_notify(self, payload: str) -> None:
        """Handle an ``open_api_tokens`` notification: ``token:<id>`` or ``user:<id>``."""
        kind, _, ident = payload.partition(":")
        if not ident.isdigit():
            self.clear()
        elif kind == "token":
            self.invalidate_token(int(ident))
        elif kind == "user":
            self.invalidate_user(int(ident))
        else:
            self.clear()

    def __len__(self) -> int:
        return len(self._cache)


class AccessTracker:
    """Coalesces ``accessed_time`` writes: one UPDATE per flush, not one per call."""

    def __init__(self) -> None:
        self._pending: dict[int, datetime] = {}

    def touch(self, token_id: int, when: datetime | None = None) -> None:
        self._pending[token_id] = when or utc_now()

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write the latest access time per token; returns tokens written."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        ids: Iterable[int] = list(pending)
        times = [pending[i] for i in ids]
        try:
            await Db.execute(
                "UPDATE api_tokens t SET accessed_time = v.at "
                "FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, at) "
                "WHERE t.id = v.id AND (t.accessed_time IS NULL OR t.accessed_time < v.at)",
                list(ids),
                times,
            )
        except BaseException:
            # Put them back (newer touches win) so the next flush retries.
            for token_id, at in pending.items():
                self._pending.setdefault(token_id, at)
            raise
        return len(pending)
