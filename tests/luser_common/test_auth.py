"""JwtCodec and AuthMiddleware: expired, forged, alg=none, wrong issuer, missing header."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from luser_common import ConfigError, InvalidToken, JwtCodec, TokenExpired, success
from luser_common.middleware import AuthMiddleware, get_claims, require_claims

from .conftest import make_app

SECRET = "test-secret-long-enough-even-for-hs512-" + "0123456789abcdef" * 2
codec = JwtCodec(SECRET, issuer="luser", access_ttl=60, leeway=0)
VALID_CLAIMS = {"sub": "1", "exp": 9999999999, "iat": 1, "iss": "luser"}


async def me(request: Request) -> Response:
    return success({"claims": get_claims(request), "state": request.state.claims})


async def strict(request: Request) -> Response:
    return success(require_claims(request)["sub"])


ROUTES = [
    Route("/api/me", me),
    Route("/api/strict", strict),
    Route("/public/info", me),
    Route("/publicity", me),
]


def _client(**kwargs: Any) -> TestClient:
    app = make_app(Middleware(AuthMiddleware, codec, **kwargs), routes=ROUTES)
    return TestClient(app)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_encode_decode_roundtrip() -> None:
    token = codec.encode(42, {"role": "admin"})
    claims = codec.decode(token)
    assert claims["sub"] == "42" and claims["role"] == "admin" and claims["iss"] == "luser"
    assert claims["exp"] - claims["iat"] == 60
    assert "jti" in claims and SECRET not in repr(codec)


def test_reserved_claims_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="exp"):
        codec.encode(1, {"exp": 0})


def test_expired_token() -> None:
    token = codec.encode(1, ttl=timedelta(seconds=-5))
    with pytest.raises(TokenExpired) as info:
        codec.decode(token)
    assert isinstance(info.value.__cause__, jwt.ExpiredSignatureError)


def test_leeway_accepts_slightly_expired() -> None:
    lenient = JwtCodec(SECRET, access_ttl=60, leeway=30)
    assert lenient.decode(lenient.encode(1, ttl=-5))["sub"] == "1"


@pytest.mark.parametrize(
    "token",
    [
        JwtCodec("another-secret-also-long-enough-0123456789abcdef").encode(1),  # forged
        JwtCodec(SECRET, issuer="evil").encode(1),  # wrong issuer
        "not.a.token",
        "garbage",
        # alg "none": unsigned token claiming to be valid.
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(VALID_CLAIMS)}.",
        # Right secret, algorithm outside this codec's allow-list.
        jwt.encode(VALID_CLAIMS, SECRET, algorithm="HS512"),
        # Signed correctly but without the required exp.
        jwt.encode({"sub": "1", "iat": 1, "iss": "luser"}, SECRET, algorithm="HS256"),
    ],
)
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(InvalidToken) as info:
        codec.decode(token)
    assert isinstance(info.value.__cause__, jwt.InvalidTokenError)


def test_codec_rejects_bad_config() -> None:
    with pytest.raises(ConfigError):
        JwtCodec("")
    with pytest.raises(ConfigError):
        JwtCodec(SECRET, algorithm="none")
    with pytest.raises(ConfigError):
        JwtCodec(SECRET, algorithm="RS256")


def _err(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.json()["success"] is False
    return resp.json()["error"]


def test_middleware_accepts_valid_token() -> None:
    token = codec.encode("u1", {"role": "user"})
    with _client() as c:
        resp = c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["claims"]["sub"] == "u1" and data["state"]["role"] == "user"


def test_middleware_missing_header() -> None:
    with _client() as c:
        resp = c.get("/api/me", headers={"X-Request-ID": "auth-1"})
    err = _err(resp)
    assert err["code"] == "UNAUTHORIZED" and err["request_id"] == "auth-1"
    assert resp.headers["www-authenticate"] == "Bearer"


def test_middleware_wrong_scheme() -> None:
    with _client() as c:
        err = _err(c.get("/api/me", headers={"Authorization": "Basic dTpw"}))
    assert err["code"] == "UNAUTHORIZED"


def test_middleware_expired_token() -> None:
    token = codec.encode(1, ttl=-5)
    with _client() as c:
        resp = c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert _err(resp)["code"] == "TOKEN_EXPIRED"
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_middleware_forged_and_none_tokens() -> None:
    forged = JwtCodec("x" * 40).encode(1)
    none_alg = f"{_b64({'alg': 'none'})}.{_b64({'sub': '1', 'exp': 9999999999, 'iat': 1})}."
    with _client() as c:
        for token in (forged, none_alg):
            resp = c.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert _err(resp)["code"] == "INVALID_TOKEN"


def test_public_prefix_is_segment_aware() -> None:
    with _client(public_paths=["/public"]) as c:
        assert c.get("/public/info").json()["data"]["claims"] is None
        assert _err(c.get("/publicity"))["code"] == "UNAUTHORIZED"


def test_optional_mode() -> None:
    with _client(optional=True) as c:
        assert c.get("/api/me").json()["data"]["claims"] is None
        # Anonymous callers still cannot reach handlers that require claims.
        assert _err(c.get("/api/strict"))["code"] == "UNAUTHORIZED"
        bad = c.get("/api/me", headers={"Authorization": "Bearer nope"})
        assert _err(bad)["code"] == "INVALID_TOKEN"
        good = c.get("/api/strict", headers={"Authorization": f"Bearer {codec.encode(7)}"})
        assert good.json()["data"] == "7"
