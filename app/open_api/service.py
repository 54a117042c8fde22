"""The open API gateway: one object that owns the caches, the writer and the pipeline.

Per call (``OpenApi.call``), in order, with no SQL reads in steady state:
authenticate the key (cache) -> check status, owner, expiry, ability and IP ->
price it from the routing snapshot -> pick the channel order (snapshot) ->
deduct (one write transaction) -> call the upstream, failing over channel by
channel -> refund if every channel failed -> enqueue the log row. Read-only work
may run during the deduction when ``overlap_reads`` is on; it is released only
once the charge commits.

A call with an ``Idempotency-Key`` is bound to its request (``fingerprint``): a
replay of a finished call returns the stored outcome with no new provider work
and no new charge; a replay while the first still runs is refused (409
``IDEMPOTENCY_KEY_IN_PROGRESS``); the key on another request is refused (409
``IDEMPOTENCY_KEY_REUSED``). Its outcome is stored before it is answered, with
the refund in one transaction when the work failed. Docs: docs/open-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from app.open_api.errors import (
    CallInterrupted,
    IdempotencyKeyInProgress,
    NoChannel,
    UpstreamFailed,
    replayed_failure,
)
from app.open_api.headroom import Headroom
from app.open_api.logs import LogRow, LogWriter
from app.open_api.metrics import OpenApiMetrics
from app.open_api.partitions import maintain_partitions
from app.open_api.quota import (
    CallRecord,
    Deduction,
    Outcome,
    deduct_quota,
    refund_quota,
    store_outcome,
)
from app.open_api.recovery import recover
from app.open_api.rollup import catch_up
from app.open_api.router import ChannelInfo, ConfigRefresher, RouterConfig
from app.open_api.secretbox import SecretBox
from app.open_api.tokens import AccessTracker, TokenInfo, TokenStore
from app.open_api.upstream import ChannelClients, UpstreamFactory
from app.settings import OpenApiConfig, VodConfig
from app.vod.base import VodProvider
from luser_common import (
    AppError,
    ConfigError,
    EncryptionError,
    ExternalServiceError,
    NetworkError,
    ValidationError,
    utc_now,
)
from luser_common import TimeoutError as AppTimeout
from luser_common.tasks import every

__all__ = ["CallContext", "OpenApi"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Action = Callable[[ChannelInfo, VodProvider], Awaitable[T]]

# A channel failing in one of these ways is skipped for the next one.
_CHANNEL_FAILURES = (ExternalServiceError, NetworkError, AppTimeout, ConfigError, EncryptionError)

PARTITION_JOB_SECONDS = 3600.0
MAX_IDEMPOTENCY_KEY = 100  # characters; the deduction id adds the user id
RECOVERY_JOB_SECONDS = 300.0


@dataclass
class CallContext:
    """What one open API call knows about itself (for the log row)."""

    key: str | None
    ability: str
    path: str
    client_ip: str | None
    request_id: str
    idempotency_key: str | None = None
    fingerprint: bytes | None = None  # of (method, path, parameters), with a key
    # This call attempt: its deduction retries carry it, to recognise their own commit.
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    info: TokenInfo | None = None
    channel_id: int | None = None
    failed: list[int] = field(default_factory=list)
    cost: int = 0
    deduction_id: str | None = None  # set when this attempt owns a charge

    @property
    def keyed(self) -> bool:
        return self.idempotency_key is not None


class OpenApi:
    """Construct once per application; ``start()`` at startup, ``stop()`` at shutdown."""

    def __init__(
        self,
        config: OpenApiConfig | None = None,
        *,
        vod: VodConfig | None = None,
        upstreams: UpstreamFactory | None = None,
    ) -> None:
        self.config = config = config or OpenApiConfig()
        pepper = config.token_pepper.get_secret_value().encode()
        self.pepper = pepper
        self.metrics = OpenApiMetrics()
        self.tokens = TokenStore(
            pepper, ttl_seconds=config.token_cache_ttl_seconds, max_size=config.token_cache_size
        )
        self.access = AccessTracker()
        self.box = SecretBox.from_config(config.channel_secret_key.get_secret_value(), pepper)
        self.router = ConfigRefresher(
            poll_interval=config.config_poll_interval_seconds,
            on_token_change=self.tokens.on_notify,
            # Group memberships live in the token cache entries: drop them on any change.
            on_config_change=self._config_changed,
            # Token/owner notifications missed while LISTEN was down: reload on demand.
            on_listen_gap=self.tokens.clear,
        )
        self.logs = LogWriter(
            queue_size=config.log_queue_size,
            batch_size=config.log_batch_size,
            flush_interval=config.log_flush_interval_seconds,
            writers=config.log_writers,
            metrics=self.metrics,
        )
        self.upstreams: UpstreamFactory = upstreams or ChannelClients(self.box, vod)
        self.headroom = Headroom(max_tokens=config.token_cache_size)
        self.overlap_reads = config.overlap_reads
        self._tasks: list[asyncio.Task[None]] = []
        # The first recovery after a start looks a day back (the process may have been
        # down a while); later runs only cover what happened since.
        self._recovery_lookback = timedelta(days=1)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.router.start()
        try:
            self.metrics.track_config_version(lambda: self.router.config.version)
            await self.logs.start()
        except BaseException:
            await self.router.stop()
            raise
        self._tasks = [
            asyncio.create_task(
                every(
                    self.config.accessed_time_flush_seconds,
                    self.access.flush,
                    name="open-api-accessed-time",
                )
            ),
            asyncio.create_task(
                every(PARTITION_JOB_SECONDS, self.maintain, name="open-api-partitions", first=0)
            ),
            asyncio.create_task(
                every(RECOVERY_JOB_SECONDS, self.recover, name="open-api-recovery", first=0)
            ),
            asyncio.create_task(
                every(
                    self.config.rollup_interval_seconds,
                    self.roll_up,
                    name="open-api-usage-rollup",
                )
            ),
        ]

    async def stop(self) -> None:
        """Stop background work; flush access times and every queued log row."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.access.flush()
        except Exception:
            log.exception("open API: final accessed_time flush failed")
        await self.logs.stop()
        await self.router.stop()
        await self.upstreams.aclose()
        self.metrics.process_exited()

    def _config_changed(self) -> None:
        # Whoever changed it (this node, another node, SQL): the version is the database's.
        self.tokens.clear()
        self.metrics.track_config_version(lambda: self.router.config.version)

    async def maintain(self) -> None:
        report = await maintain_partitions(
            ahead=self.config.partitions_ahead_months,
            retention_months=self.config.log_retention_months,
            usage_retention_months=self.config.usage_retention_months,
        )
        if report.created or report.dropped:
            log.info(
                "log and deduction partitions: created %s, dropped %s",
                report.created,
                report.dropped,
            )

    async def recover(self) -> None:
        """Refund calls a dead process left unanswered, rebuild the log rows it lost."""
        report = await recover(lookback=self._recovery_lookback)
        self._recovery_lookback = timedelta(hours=1)
        if report.interrupted or report.logs_rebuilt:
            log.warning(
                "open API recovery: %d interrupted keyed calls refunded, %d log rows rebuilt",
                report.interrupted,
                report.logs_rebuilt,
            )

    async def roll_up(self) -> None:
        """Count the calls logged since the last run into the usage rollup."""
        if await catch_up() is None:
            log.warning("usage rollup: writers held router_logs too long; next run counts")

    async def refresh_config(self) -> RouterConfig:
        """Reload routing now (management API changes apply on this node at once)."""
        return await self.router.refresh()

    # -- the pipeline ----------------------------------------------------------------

    async def call(
        self,
        ctx: CallContext,
        action: Action[T] | None,
        *,
        resolve: Callable[[], Awaitable[str | None]] | None = None,
        local: Callable[[TokenInfo], Awaitable[T]] | None = None,
        read_only: bool = False,
    ) -> T:
        """Run one open API call: ``action`` against upstream channels, or ``local``.

        ``resolve`` runs once the caller is authorised (before any charge) and may
        name the provider the call must go to (a video lives at one provider).
        ``read_only`` says the work changes nothing anywhere (a lookup, a signature):
        it may then run while the charge commits, its result released only once the
        charge has committed (see ``Headroom`` for when that happens).
        """
        status, error_code = 200, None
        try:
            result = await self._call(ctx, action, resolve, local, read_only)
        except AppError as err:
            status, error_code = err.status_code, err.code
            raise
        except Exception:
            status, error_code = 500, "INTERNAL_ERROR"
            raise
        finally:
            self._finish(ctx, status, error_code)
        return result

    async def _call(
        self,
        ctx: CallContext,
        action: Action[T] | None,
        resolve: Callable[[], Awaitable[str | None]] | None,
        local: Callable[[TokenInfo], Awaitable[T]] | None,
        read_only: bool,
    ) -> T:
        info = ctx.info = await self.tokens.authenticate(ctx.key)
        self.tokens.check_access(info, ctx.ability, ctx.client_ip)
        if ctx.idempotency_key is not None and len(ctx.idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ValidationError(
                f"Idempotency-Key 最多 {MAX_IDEMPOTENCY_KEY} 个字符", field="Idempotency-Key"
            )
        provider = await resolve() if resolve is not None else None
        config = self.router.config
        cost = config.cost(ctx.ability, info.group)
        if cost is None:
            raise NoChannel(f"未知的能力: {ctx.ability}")
        order: list[ChannelInfo] = []
        if action is not None:
            order = [
                c
                for c in config.failover_order(info.group, ctx.ability)
                if provider is None or c.provider == provider
            ]
            if not order:
                raise NoChannel()

        async def work() -> T:
            if action is None:
                assert local is not None
                return await local(info)
            return await self._failover(ctx, order, action)

        # The charge is a durable commit: for read-only work, overlap the two (when on).
        # Never for a keyed call: its replays must not reach the provider.
        overlap = (
            read_only
            and self.overlap_reads
            and not ctx.keyed
            and self.headroom.covers(info.token_id, cost)
        )
        pending = asyncio.ensure_future(work()) if overlap else None
        try:
            deduction = await self._deduct(ctx, info, cost)
        except BaseException:
            if pending is not None:  # not charged: nothing of the work leaves
                pending.cancel()
                pending.add_done_callback(_consume)
                ctx.channel_id = None
                self.metrics.overlapped.labels("discarded").inc()
            raise
        if deduction.replayed:
            return self._replay(deduction)
        self.access.touch(info.token_id)
        try:
            if pending is None:
                result = await work()
            else:
                result = await pending
                self.metrics.overlapped.labels("served").inc()
            if ctx.keyed:
                await store_outcome(deduction.request_id, ctx.attempt, Outcome(200, body=result))
            return result
        except BaseException as exc:
            failure = _failure(exc) if ctx.keyed else None
            if deduction.amount or failure is not None:
                await refund_quota(deduction.request_id, outcome=failure)
                self.metrics.deductions.labels("refunded").inc()
            ctx.cost = 0
            raise

    @staticmethod
    def _replay(deduction: Deduction) -> Any:
        """The stored outcome of the first call with this key: no work, no charge."""
        outcome = deduction.outcome
        if outcome is None:  # the first call has not answered yet
            raise IdempotencyKeyInProgress(details={"request_id": deduction.request_id})
        if outcome.code is not None:
            raise replayed_failure(outcome.status, outcome.code, outcome.message)
        return outcome.body

    async def _deduct(self, ctx: CallContext, info: TokenInfo, cost: int) -> Deduction:
        # Ids are scoped by user: two partners choosing the same key never collide.
        # Without an Idempotency-Key every call attempt is a charge of its own.
        dedup = f"{info.user_id}:{ctx.idempotency_key or ctx.attempt}"
        try:
            deduction = await deduct_quota(
                info.user_id,
                info.token_id,
                cost,
                dedup,
                retries=self.config.deduction_retries,
                synchronous_commit=self.config.deduction_synchronous_commit,
                attempt=ctx.attempt,
                call=CallRecord(
                    fingerprint=ctx.fingerprint,
                    keyed=ctx.keyed,
                    ability=ctx.ability,
                    path=ctx.path[:512],
                    log_request_id=ctx.request_id,
                ),
            )
        except AppError as err:
            refused = err.status_code < 500
            if refused:
                self.headroom.forget(info.token_id)
            self.metrics.deductions.labels("refused" if refused else "failed").inc()
            raise
        self.headroom.record(info, deduction)
        if deduction.replayed:
            self.metrics.deductions.labels("replayed").inc()
        else:
            self.metrics.deductions.labels("charged").inc()
            self.metrics.deducted_nano.inc(deduction.amount)
            ctx.cost = deduction.amount
            ctx.deduction_id = dedup
        return deduction

    async def _failover(self, ctx: CallContext, order: list[ChannelInfo], action: Action[T]) -> T:
        last: AppError | None = None
        for channel in order:
            try:
                client = self.upstreams.get(channel)
                result = await asyncio.wait_for(
                    action(channel, client), self.config.upstream_timeout_seconds
                )
            except (*_CHANNEL_FAILURES, TimeoutError) as exc:
                err = exc if isinstance(exc, AppError) else AppTimeout()
                last = err
                ctx.failed.append(channel.id)
                self.metrics.upstream_failures.labels(str(channel.id)).inc()
                log.warning(
                    "open API %s: channel %s (%s) failed: %s; failing over",
                    ctx.request_id,
                    channel.id,
                    channel.name,
                    err.code,
                )
                continue
            ctx.channel_id = channel.id
            return result
        raise UpstreamFailed(details={"channels": ctx.failed, "last": last.code if last else None})

    def _finish(self, ctx: CallContext, status: int, error_code: str | None) -> None:
        self.metrics.requests.labels(ctx.ability, str(status)).inc()
        if ctx.info is None:  # unauthenticated: nobody to attribute a row to
            return
        self.logs.insert_log(
            LogRow(
                request_id=ctx.request_id,
                user_id=ctx.info.user_id,
                token_id=ctx.info.token_id,
                path=ctx.path[:512],
                ability=ctx.ability,
                channel_id=ctx.channel_id,
                failed_channel_ids=ctx.failed or None,
                status_code=status,
                error_code=error_code,
                latency_ms=int((time.perf_counter() - ctx.started) * 1000),
                units=1,
                cost=ctx.cost,
                client_ip=ctx.client_ip,
                created_at=utc_now(),
                deduction_id=ctx.deduction_id,
            )
        )

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


def _failure(exc: BaseException) -> Outcome:
    """What a keyed call's replays answer after this failure (its charge is refunded)."""
    if isinstance(exc, AppError):
        return Outcome(exc.status_code, exc.code, exc.message)
    if isinstance(exc, asyncio.CancelledError):
        return Outcome(
            CallInterrupted.status_code, CallInterrupted.code, CallInterrupted.default_message
        )
    return Outcome(500, "INTERNAL_ERROR", "服务器内部错误")


def _consume(task: asyncio.Future[Any]) -> None:
    # Discarded work may still fail (or be cancelled); its outcome is not news.
    if not task.cancelled():
        task.exception()
