"""The one services container: every feature's services, built once per application.

Operations reach it one way, ``call.services.<feature>`` (``accounts``, ``catalog``,
``media``, ``player``, ``providers``, ``commerce``, ``open_api``, ``outbox``). Building it does no
I/O; the features' lifespans (``app.features``) start and stop what runs in the
background, and :meth:`Services.aclose` releases the shared clients afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts.security import LoginLimiter
from app.accounts.service import Accounts, TokenPair
from app.catalog.entitlement import EntitlementChecker, FreeTierOnly
from app.catalog.media import Media
from app.catalog.play import Player
from app.catalog.providers import ProviderLookup
from app.catalog.service import Catalog
from app.commerce.service import Commerce
from app.notify.jobs import build_outbox
from app.notify.outbox import Outbox
from app.notify.sender import NotificationSender
from app.open_api.service import OpenApi
from app.payments import PaymentProviders
from app.settings import AppConfig


@dataclass
class Services:
    """Everything the operations and jobs use, built once per application."""

    config: AppConfig
    accounts: Accounts
    catalog: Catalog
    media: Media
    player: Player
    providers: ProviderLookup
    commerce: Commerce
    open_api: OpenApi
    outbox: Outbox

    @classmethod
    def build(
        cls,
        config: AppConfig,
        providers: ProviderLookup,
        entitlements: EntitlementChecker | None = None,
        login_limiter: LoginLimiter | None = None,
        payment_providers: PaymentProviders | None = None,
        notification_sender: NotificationSender | None = None,
    ) -> Services:
        """``payment_providers`` default to the enabled ones in ``config.payment``,
        ``notification_sender`` to logging."""
        catalog = Catalog()
        return cls(
            config=config,
            accounts=Accounts(config.jwt, login_limiter or LoginLimiter.for_config(config)),
            catalog=catalog,
            media=Media(catalog, providers),
            player=Player(catalog, providers, entitlements or FreeTierOnly()),
            providers=providers,
            commerce=Commerce.build(config, payment_providers),
            open_api=OpenApi(config.open_api, vod=config.vod),
            outbox=build_outbox(config.notifications, notification_sender),
        )

    async def aclose(self) -> None:
        await self.providers.aclose()
        await self.accounts.limiter.close()


__all__ = [
    "Accounts",
    "Catalog",
    "Commerce",
    "EntitlementChecker",
    "FreeTierOnly",
    "LoginLimiter",
    "Media",
    "OpenApi",
    "Player",
    "ProviderLookup",
    "Services",
    "TokenPair",
]
