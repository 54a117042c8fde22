"""Domain services: accounts, catalog, media (VOD glue), play and entitlements."""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts.security import LoginLimiter
from app.accounts.service import Accounts, TokenPair
from app.catalog.entitlement import EntitlementChecker, FreeTierOnly
from app.catalog.media import Media
from app.catalog.play import Player
from app.catalog.providers import ProviderLookup
from app.catalog.service import Catalog
from app.settings import AppConfig


@dataclass
class Services:
    """Everything the routes use, built once per application."""

    accounts: Accounts
    catalog: Catalog
    media: Media
    player: Player
    providers: ProviderLookup

    @classmethod
    def build(
        cls,
        config: AppConfig,
        providers: ProviderLookup,
        entitlements: EntitlementChecker | None = None,
        login_limiter: LoginLimiter | None = None,
    ) -> Services:
        catalog = Catalog()
        return cls(
            accounts=Accounts(config.jwt, login_limiter or LoginLimiter.for_config(config)),
            catalog=catalog,
            media=Media(catalog, providers),
            player=Player(catalog, providers, entitlements or FreeTierOnly()),
            providers=providers,
        )

    async def aclose(self) -> None:
        await self.providers.aclose()
        await self.accounts.limiter.close()


__all__ = [
    "Accounts",
    "Catalog",
    "EntitlementChecker",
    "FreeTierOnly",
    "LoginLimiter",
    "Media",
    "Player",
    "ProviderLookup",
    "Services",
    "TokenPair",
]
