"""Feature flags that switch whole route families off: ``features.registration`` and
``features.open_api`` (``features.payments`` is checked by the commerce routes)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from luser_common import AppError, Forbidden
from luser_common.context import request_id_from_scope
from luser_common.http.envelope import error_response

__all__ = ["FEATURE_ROUTES", "FeatureGate", "OpenApiDisabled", "RegistrationClosed"]


class RegistrationClosed(Forbidden):
    code = "REGISTRATION_CLOSED"
    default_message = "暂不开放注册"


class OpenApiDisabled(Forbidden):
    code = "OPEN_API_DISABLED"
    default_message = "开放接口未开启"


# Path prefix -> (flag, error). Admin routes stay reachable: they configure the feature.
FEATURE_ROUTES: tuple[tuple[str, str, type[AppError]], ...] = (
    ("/api/auth/register", "registration", RegistrationClosed),
    ("/open/", "open_api", OpenApiDisabled),
    ("/api/tokens", "open_api", OpenApiDisabled),
)


class FeatureGate:
    """Pure ASGI: refuse requests to the routes of a feature flag that is off.

    Reads the config the lifespan started the app with (``app.state.config``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self._refusal(scope) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        response = error_response(refused, request_id_from_scope(scope))
        await response(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope) -> AppError | None:
        config = getattr(scope["app"].state, "config", None)
        if config is None:  # before the lifespan ran: nothing is served anyway
            return None
        path: str = scope["path"]
        for prefix, flag, error in FEATURE_ROUTES:
            if path.startswith(prefix) and not config.features.enabled(flag):
                return error()
        return None
