"""The Starlette application factory."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from app import commerce, open_api, site
from app.accounts import routes as accounts_routes
from app.catalog import routes as catalog_routes
from app.config_features import FeatureGate
from app.container import EntitlementChecker, LoginLimiter, ProviderLookup, Services
from app.lifespan import CleanStartupFailure, lifespan, mask_secrets_in_access_logs
from app.vod import VodRegistry
from app.web import health
from app.web.openapi import docs_routes
from luser_common.http import install_error_handlers
from luser_common.middleware import RequestIdMiddleware
from luser_config.schema import AppConfig

# Starlette tries routes in order: the hot public reads go first.
OPERATIONS = [*catalog_routes.OPERATIONS, *health.OPERATIONS, *accounts_routes.OPERATIONS]


def create_app(
    config: AppConfig | None = None,
    *,
    providers: ProviderLookup | None = None,
    entitlements: EntitlementChecker | None = None,
    login_limiter: LoginLimiter | None = None,
) -> Starlette:
    """The service; run it with its lifespan (uvicorn, or ``app.router.lifespan_context``).

    ``config`` defaults to the process configuration (files + environment, loaded at
    startup). ``providers`` replaces the VOD providers built from ``config.vod``,
    ``entitlements`` the plan-level check (free videos only by default).
    """

    def build_services(resolved: AppConfig) -> Services:
        return Services.build(
            resolved,
            providers or VodRegistry(resolved.vod),
            entitlements or commerce.SubscriptionEntitlements(),
            login_limiter,
        )

    mask_secrets_in_access_logs()
    app = Starlette(
        routes=[op.route() for op in OPERATIONS] + docs_routes(),
        middleware=[
            Middleware(CleanStartupFailure),
            Middleware(RequestIdMiddleware),
            Middleware(FeatureGate),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    open_api.install(app)
    commerce.install(app)
    site.install(app)  # last: its 404 page must not shadow any API route
    app.state.explicit_config = config
    app.state.build_services = build_services
    return app
