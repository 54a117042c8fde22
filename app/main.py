"""The Starlette application factory."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from app import site
from app.accounts.feature import feature as accounts
from app.catalog.feature import feature as catalog
from app.commerce import SubscriptionEntitlements
from app.commerce.feature import feature as commerce
from app.config_features import FeatureGate
from app.container import EntitlementChecker, LoginLimiter, ProviderLookup, Services
from app.features import Feature, FeaturePackage, feature_routes
from app.lifespan import CleanStartupFailure, lifespan, mask_secrets_in_access_logs
from app.notify.feature import feature as notify
from app.notify.sender import NotificationSender
from app.open_api.feature import feature as open_api
from app.payments import PaymentProviders
from app.settings import AppConfig
from app.vod import VodRegistry
from app.web import health
from app.web.openapi import docs_routes
from luser_common.http import install_error_handlers
from luser_common.middleware import RequestIdMiddleware

# Composed once, in this order: Starlette tries routes in order (the hot public reads
# go first), and the features' lifespans start in order and stop in reverse.
FEATURES: tuple[Feature, ...] = (
    catalog,
    FeaturePackage("health", health.OPERATIONS),
    accounts,
    open_api,
    commerce,
    notify,
)


def create_app(
    config: AppConfig | None = None,
    *,
    providers: ProviderLookup | None = None,
    entitlements: EntitlementChecker | None = None,
    login_limiter: LoginLimiter | None = None,
    payment_providers: PaymentProviders | None = None,
    notification_sender: NotificationSender | None = None,
) -> Starlette:
    """The service; run it with its lifespan (uvicorn, or ``app.router.lifespan_context``).

    ``config`` defaults to the process configuration (files + environment, loaded at
    startup). ``providers`` replaces the VOD providers built from ``config.vod``,
    ``entitlements`` the plan-level check (active subscriptions by default),
    ``payment_providers`` the payment providers built from ``config.payment``,
    ``notification_sender`` how subscribers are told (logged by default).
    """

    def build_services(resolved: AppConfig) -> Services:
        return Services.build(
            resolved,
            providers or VodRegistry(resolved.vod),
            entitlements or SubscriptionEntitlements(),
            login_limiter,
            payment_providers,
            notification_sender,
        )

    mask_secrets_in_access_logs()
    app = Starlette(
        routes=feature_routes(FEATURES) + docs_routes(),
        middleware=[
            Middleware(CleanStartupFailure),
            Middleware(RequestIdMiddleware),
            Middleware(FeatureGate),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    site.install(app)  # last: its 404 page must not shadow any API route
    app.state.explicit_config = config
    app.state.build_services = build_services
    app.state.features = FEATURES
    return app
