"""The partner open API: sk- tokens, quota deduction, channel routing, request logs.

``app.open_api.feature`` is the feature ``create_app`` composes: the operations,
``/metrics`` and a lifespan that starts the service (config refresher, log writer)
after the app's own startup (config, database) and stops it before the app's
shutdown, flushing every queued log row. The service itself lives in the services
container: ``call.services.open_api``.
"""

from __future__ import annotations

from app.open_api.errors import (
    AbilityNotAllowed,
    CallInterrupted,
    DeductionFailed,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InsufficientBalance,
    IpNotAllowed,
    NoChannel,
    OpenTokenDisabled,
    OpenTokenExpired,
    OpenTokenInvalid,
    OwnerDisabled,
    QuotaExceeded,
    UpstreamFailed,
)
from app.open_api.logs import LogFilter, LogRow, LogWriter, daily_usage, query_logs
from app.open_api.quota import Deduction, deduct_quota, refund_quota
from app.open_api.recovery import RecoveryReport, recover
from app.open_api.router import ConfigRefresher, RouterConfig, load_router_config
from app.open_api.service import CallContext, OpenApi
from app.open_api.tokens import Expired, Invalid, TokenInfo, TokenStore, Valid

__all__ = [
    "AbilityNotAllowed",
    "CallContext",
    "CallInterrupted",
    "ConfigRefresher",
    "Deduction",
    "DeductionFailed",
    "Expired",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyReused",
    "InsufficientBalance",
    "Invalid",
    "IpNotAllowed",
    "LogFilter",
    "LogRow",
    "LogWriter",
    "NoChannel",
    "OpenApi",
    "OpenTokenDisabled",
    "OpenTokenExpired",
    "OpenTokenInvalid",
    "OwnerDisabled",
    "QuotaExceeded",
    "RecoveryReport",
    "RouterConfig",
    "TokenInfo",
    "TokenStore",
    "UpstreamFailed",
    "Valid",
    "daily_usage",
    "deduct_quota",
    "load_router_config",
    "query_logs",
    "recover",
    "refund_quota",
]
