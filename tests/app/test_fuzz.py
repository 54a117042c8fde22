"""Schemathesis over every operation of /openapi.json, as anonymous, user and admin.

No response may be a server error, and each response must match the documented
statuses and schemas. The credentials really apply: schemathesis generates its own
``Authorization`` for operations that declare bearer auth, so each case's header is
replaced (or removed, for anonymous), and the test asserts that every role got past
authentication (a status other than 401/403) on every operation it may call. The
partner API (/open/v1) is called with the role's own ``sk-`` key, backed by a
wallet and a channel on the VOD stub.

The service runs under uvicorn on a database of its own (``live_service``): the admin
fuzzer disables accounts and deletes plans at random.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.sandbox.vod import TencentVodStub
from app.settings import AppConfig
from app.web.operation import operations_of

from .conftest import detached_pool
from .live_service import live_service, own_database, sign_up

# Examples per operation and role; 3 roles x ~80 operations stay well under a minute.
MAX_EXAMPLES = 6
ROLES = ("anonymous", "user", "admin")
PARTNER_PREFIX = "/open/v1/"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Role:
    name: str
    jwt: str | None = None
    key: str | None = None  # sk- key for the partner API

    def authorization(self, path: str) -> str | None:
        secret = self.key if path.startswith(PARTNER_PREFIX) else self.jwt
        return f"Bearer {secret}" if secret else None


@dataclass
class Service:
    base_url: str
    access: dict[tuple[str, str], str]  # (METHOD, path) -> "public" | "user" | "admin"
    roles: dict[str, Role] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def detached(app_config: AppConfig) -> AsyncIterator[None]:
    async with detached_pool(app_config):
        yield


@pytest.fixture(scope="module")
def fuzz_service(
    app_config: AppConfig, tencent_stub: TencentVodStub, detached: None
) -> Iterator[Service]:
    with own_database() as url:
        database = app_config.database.model_copy(update={"url": SecretStr(url)})
        config = app_config.model_copy(update={"database": database})
        with live_service(config) as (base_url, app):
            access = {(op.method, op.path): op.access for op in operations_of(app.routes)}
            service = Service(base_url, access)
            with httpx.Client(base_url=base_url, timeout=30) as client:
                _seed(client, url, service, tencent_stub)
            yield service


def _seed(client: httpx.Client, url: str, service: Service, stub: TencentVodStub) -> None:
    """A user and an admin, each with a funded wallet and an sk- key; one channel."""
    users: dict[str, int] = {}
    for name in ("user", "admin"):
        users[name], jwt = sign_up(client, url, admin=name == "admin")
        service.roles[name] = Role(name, jwt=jwt)
    service.roles["anonymous"] = Role("anonymous")
    admin = {"Authorization": f"Bearer {service.roles['admin'].jwt}"}
    r = client.post(
        "/api/admin/open/channels",
        headers=admin,
        json={
            "name": f"fuzz-{secrets.token_hex(3)}",
            "provider": "tencent",
            "base_url": f"http://{stub.endpoint}",
            "credentials": {"secret_id": stub.secret_id, "secret_key": stub.secret_key},
        },
    )
    assert r.status_code == 201, r.text
    for ability in ("video.play_url", "video.upload_auth"):
        body = {"group": "default", "ability": ability, "channel_id": r.json()["data"]["id"]}
        assert client.post("/api/admin/open/abilities", headers=admin, json=body).is_success
    for name, user_id in users.items():
        topup = {"user_id": user_id, "amount": 10**15}
        assert client.post("/api/admin/open/topups", headers=admin, json=topup).is_success
        own = {"Authorization": f"Bearer {service.roles[name].jwt}"}
        r = client.post("/api/tokens", headers=own, json={"name": "fuzz"})
        assert r.status_code == 201, r.text
        service.roles[name].key = r.json()["data"]["key"]


def _gated_but_allowed(service: Service, method: str, path: str, role: str) -> bool:
    """Whether ``role`` must get past the operation's authentication gate."""
    if path.startswith(PARTNER_PREFIX):  # sk- keys: any account may hold one
        return role != "anonymous"
    access = service.access[(method, path)]
    return access == "admin" == role or (access == "user" and role in ("user", "admin"))


def _fuzz(
    operation: Any,
    service: Service,
    role: Role,
    session: requests.Session,
    refusals: list[bool],
) -> None:
    """Run the operation's examples as ``role``; ``refusals`` gets, per response,
    whether authentication refused it."""
    authorization = role.authorization(operation.path)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        # Replace, never setdefault: schemathesis puts its own random token here.
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if authorization:
            headers["Authorization"] = authorization
        case.headers = headers
        response = case.call(base_url=service.base_url, session=session, timeout=30)
        refusals.append(_refused_at_the_door(response))
        case.validate_response(response, checks=CHECKS)

    run()


# Codes of the authentication gate (JWT or sk- key). A 401/403 with another code
# (a wrong old password, a bad callback signature) came from the operation itself.
GATE_CODES = frozenset(
    {"UNAUTHORIZED", "INVALID_TOKEN", "TOKEN_EXPIRED", "FORBIDDEN", "ACCOUNT_DISABLED"}
    | {"TOKEN_DISABLED", "OWNER_DISABLED", "ABILITY_NOT_ALLOWED", "IP_NOT_ALLOWED"}
)


def _refused_at_the_door(response: requests.Response) -> bool:
    if response.status_code not in (401, 403):
        return False
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return True
    return code in GATE_CODES


def test_every_operation_as_every_role_without_500(fuzz_service: Service) -> None:
    # The schemathesis pytest plugin does not load under pytest 9, so drive hypothesis here.
    schema = schemathesis.openapi.from_url(f"{fuzz_service.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # The partner API first: the fuzzer may later disable the key it uses, and admin
    # operations last within a role, as they may disable the user.
    operations.sort(key=lambda op: (not op.path.startswith(PARTNER_PREFIX), "admin" in op.path))
    failures: list[str] = []
    unreached: list[str] = []
    started = time.monotonic()
    with requests.Session() as session:
        for role_name in ROLES:
            role = fuzz_service.roles[role_name]
            for operation in operations:
                method, path = operation.method.upper(), operation.path
                label = f"{role_name}: {method} {path}"
                refusals: list[bool] = []
                try:
                    _fuzz(operation, fuzz_service, role, session, refusals)
                except (Exception, BaseExceptionGroup) as exc:  # report them all at once
                    failures.append(f"{label}: {exc}")
                if _gated_but_allowed(fuzz_service, method, path, role_name) and all(refusals):
                    unreached.append(f"{label}: all {len(refusals)} calls refused at the door")
    elapsed = time.monotonic() - started
    assert not failures + unreached, "\n\n".join(failures + unreached)
    assert len(operations) >= 70  # the whole document, not a part of it
    assert elapsed < 120, f"the fuzz pass took {elapsed:.0f} s"
