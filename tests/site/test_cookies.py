"""Cookie flags: HttpOnly and SameSite=Lax always, Secure in production."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from app.accounts.service import TokenPair
from app.settings import AppConfig
from app.site.session import set_session

PAIR = TokenPair("access", "refresh", expires_in=600, refresh_expires_in=86400)


def _cookie(env: str) -> str:
    config = AppConfig.model_validate({"env": env, "jwt": {"secret": "x" * 32}})
    response = Response()
    set_session(response, config, PAIR)
    return response.headers["set-cookie"].lower()


@pytest.mark.parametrize("env", ["production", "prod"])
def test_production_session_cookie_is_secure(env: str) -> None:
    cookie = _cookie(env)
    assert "; secure" in cookie and "; httponly" in cookie and "samesite=lax" in cookie
    assert "max-age=86400" in cookie


def test_development_session_cookie_works_over_http() -> None:
    cookie = _cookie("dev")
    assert "; secure" not in cookie and "; httponly" in cookie and "samesite=lax" in cookie
