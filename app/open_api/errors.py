"""Open API error codes: one per refusal reason, each with its own HTTP status.

    AppError
    ├── Unauthorized 401
    │   ├── InvalidToken 401 ........ OpenTokenInvalid   401 INVALID_TOKEN (no/bad/unknown key)
    │   │                             OpenTokenDisabled  401 TOKEN_DISABLED
    │   └── TokenExpired 401 ........ OpenTokenExpired   401 TOKEN_EXPIRED
    ├── Forbidden 403 ............... OwnerDisabled      403 OWNER_DISABLED
    │                                 AbilityNotAllowed  403 ABILITY_NOT_ALLOWED
    │                                 IpNotAllowed       403 IP_NOT_ALLOWED
    ├── LimitExceeded 429 ........... QuotaExceeded      429 QUOTA_EXCEEDED
    │                                 InsufficientBalance 402 INSUFFICIENT_BALANCE
    ├── Conflict 409 ................ IdempotencyKeyReused     409 IDEMPOTENCY_KEY_REUSED
    │                                 IdempotencyKeyInProgress 409 IDEMPOTENCY_KEY_IN_PROGRESS
    ├── ExternalServiceError 502 .... UpstreamFailed     502 UPSTREAM_FAILED
    │                                 CallInterrupted    502 CALL_INTERRUPTED (stored, replayed)
    │                                 NoChannel          503 NO_CHANNEL_AVAILABLE
    └── DatabaseUnavailable 503 ..... DeductionFailed    503 DEDUCTION_FAILED (retryable)

402 for an empty wallet (the caller must pay; retrying will not help) and 429
for an exhausted token quota (the key's own limit, like a rate limit).
"""

from __future__ import annotations

from luser_common import (
    AppError,
    Conflict,
    DatabaseUnavailable,
    ExternalServiceError,
    Forbidden,
    InvalidToken,
    LimitExceeded,
    TokenExpired,
)

__all__ = [
    "AbilityNotAllowed",
    "CallInterrupted",
    "DeductionFailed",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyReused",
    "InsufficientBalance",
    "IpNotAllowed",
    "NoChannel",
    "OpenTokenDisabled",
    "OpenTokenExpired",
    "OpenTokenInvalid",
    "OwnerDisabled",
    "QuotaExceeded",
    "UpstreamFailed",
    "replayed_failure",
]


class OpenTokenInvalid(InvalidToken):
    """No key, a malformed key, or a key that matches no token (luser_common's code)."""

    default_message = "API 令牌无效"


class OpenTokenDisabled(InvalidToken):
    """The key exists but was disabled by its owner or an admin."""

    code = "TOKEN_DISABLED"
    default_message = "API 令牌已被禁用"


class OpenTokenExpired(TokenExpired):
    """The key's expiry time has passed."""

    code = "TOKEN_EXPIRED"
    default_message = "API 令牌已过期"


class OwnerDisabled(Forbidden):
    """The key's owner account is disabled."""

    code = "OWNER_DISABLED"
    default_message = "令牌所属账户已被禁用"


class AbilityNotAllowed(Forbidden):
    """The key's ability allow-list does not include this operation."""

    code = "ABILITY_NOT_ALLOWED"
    default_message = "该令牌无权调用此接口"


class IpNotAllowed(Forbidden):
    """The caller's address is outside the key's IP/CIDR allow-list."""

    code = "IP_NOT_ALLOWED"
    default_message = "该 IP 地址不允许使用此令牌"


class QuotaExceeded(LimitExceeded):
    """The call would push the token's used quota over its limit."""

    code = "QUOTA_EXCEEDED"
    default_message = "令牌额度已用尽"


class InsufficientBalance(LimitExceeded):
    """The call would take the owner's wallet below zero."""

    status_code = 402
    code = "INSUFFICIENT_BALANCE"
    default_message = "账户余额不足"


class UpstreamFailed(ExternalServiceError):
    """Every candidate upstream channel failed; the charge was refunded."""

    code = "UPSTREAM_FAILED"
    default_message = "上游服务调用失败, 费用已退回"


class NoChannel(ExternalServiceError):
    """No enabled channel serves this ability for the caller's group."""

    status_code = 503
    code = "NO_CHANNEL_AVAILABLE"
    default_message = "暂无可用的上游通道"


class DeductionFailed(DatabaseUnavailable):
    """The deduction could not be committed after retries; nothing was charged."""

    code = "DEDUCTION_FAILED"
    default_message = "扣费暂时失败, 请使用相同的 Idempotency-Key 重试"


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was first used with another request (method, path, parameters)."""

    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "该 Idempotency-Key 已用于另一个请求"


class IdempotencyKeyInProgress(Conflict):
    """The first request with this Idempotency-Key is still running; retry shortly."""

    code = "IDEMPOTENCY_KEY_IN_PROGRESS"
    default_message = "相同 Idempotency-Key 的请求正在处理中, 请稍后重试"
    retryable = True


class CallInterrupted(ExternalServiceError):
    """The process handling a keyed call died before answering; recovery refunded it."""

    code = "CALL_INTERRUPTED"
    default_message = "请求处理中断, 费用已退回; 请使用新的 Idempotency-Key 重试"


_replay_classes: dict[tuple[int, str], type[AppError]] = {}


def replayed_failure(status: int, code: str, message: str | None) -> AppError:
    """The stored failure of a keyed call, raised again for its replays (same status/code)."""
    cls = _replay_classes.get((status, code))
    if cls is None:
        cls = type("ReplayedFailure", (AppError,), {"status_code": status, "code": code})
        _replay_classes[(status, code)] = cls
    return cls(message)
