"""The VOD registry is the one place a provider is named: a third provider registered
with one line is accepted by the config, usable by a video, reachable on the callback
route and started by the sandbox; every registered provider is wired the same way."""

from __future__ import annotations

import httpx
import pytest

from app.catalog.routes.admin import VideoCreateBody
from app.config_checks import provider_problems
from app.sandbox.runtime import Sandbox, load_stand_in
from app.settings import AppConfig, VodConfig
from app.vod.registry import VOD_PROVIDERS, VodRegistry, vod_section
from luser_db import Db

from .conftest import Account, MakeAccount
from .fake_vod import SPEC, FakeVodProvider, FakeVodSandbox


@pytest.fixture
def fake_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VOD_PROVIDERS, "fake", SPEC)  # the one registry line


FAKE_CONFIG = {"vod": {"default_provider": "fake", "fake": {"cdn": "https://cdn.example"}}}


def test_the_config_refuses_a_provider_nobody_registered() -> None:
    problems = provider_problems(AppConfig.model_validate(FAKE_CONFIG))
    assert any(p.startswith("vod.default_provider") for p in problems), problems
    assert any(p.startswith("vod.fake ") for p in problems), problems


def test_the_config_accepts_a_registered_third_provider(fake_registered: None) -> None:
    config = AppConfig.model_validate(FAKE_CONFIG)
    assert provider_problems(config) == []
    provider = VodRegistry(config.vod).get()
    assert isinstance(provider, FakeVodProvider)
    assert provider.config.cdn == "https://cdn.example"


async def test_a_video_uses_the_third_provider_through_the_api(
    fake_registered: None, api: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    r = await api.post(
        "/api/admin/videos",
        json={"title": "第三方点播", "provider": "fake", "media_id": "fake-0001"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    video_id = r.json()["data"]["id"]

    # Its callback route: the parameterised one, authenticated by the provider itself.
    event = {"media_id": "fake-0001", "event_id": "evt-fake-1"}
    refused = await api.post("/api/vod/callbacks/fake?token=wrong", json=event)
    assert refused.status_code == 403, refused.text
    r = await api.post("/api/vod/callbacks/fake?token=fake-token", json=event)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"status": "applied", "event_id": "evt-fake-1", "video_id": video_id}

    r = await api.post(f"/api/admin/videos/{video_id}/publish", headers=admin.headers)
    assert r.status_code == 200, r.text
    viewer = await make_account()
    r = await api.post(f"/api/videos/{video_id}/play", headers=viewer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["url"] == "https://cdn.fake.invalid/fake-0001.mp4"


async def test_the_sandbox_starts_the_third_providers_stand_in(fake_registered: None) -> None:
    config = AppConfig.model_validate({**FAKE_CONFIG, "sandbox": {"public_url": "http://svc"}})
    async with Sandbox(config) as sandboxed:
        assert len(FakeVodSandbox.running) == 1
        section = vod_section(sandboxed.vod, "fake")
        assert section.model_dump() == {
            "cdn": "http://svc/fake-cdn",
            "callback_token": "sandbox-token",
        }
    assert FakeVodSandbox.running == []


@pytest.mark.parametrize("name", sorted(VOD_PROVIDERS))
async def test_every_registered_provider_is_wired_everywhere(
    name: str, api: httpx.AsyncClient, admin: Account
) -> None:
    spec = VOD_PROVIDERS[name]
    assert spec.provider.name == name
    assert isinstance(vod_section(VodConfig(), name), spec.config)
    assert VideoCreateBody.model_validate({"title": "t", "provider": name}).provider == name
    # The database takes the name (no CHECK constraint lists providers).
    r = await api.post(
        "/api/admin/videos", json={"title": f"{name} 视频", "provider": name}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    # The callback route answers for it (the provider refuses an unauthenticated call).
    r = await api.post(f"/api/vod/callbacks/{name}", content=b"{}")
    assert r.status_code == 403, r.text
    # Its stand-in runs and configures it.
    stand_in = load_stand_in(spec.sandbox)
    stand_in.start()
    try:
        section = stand_in.sandbox_config("http://127.0.0.1:9")
        assert isinstance(section, spec.config)
        provider = spec.provider(section)  # type: ignore[call-arg]
        info = await provider.media_info("sandbox-media-1")
        assert info.media_id == "sandbox-media-1"
    finally:
        stand_in.stop()


async def test_unregistered_names_are_refused(api: httpx.AsyncClient, admin: Account) -> None:
    r = await api.post("/api/vod/callbacks/youtube", content=b"{}")
    assert r.status_code == 404, r.text
    r = await api.post(
        "/api/admin/videos", json={"title": "t", "provider": "youtube"}, headers=admin.headers
    )
    assert r.status_code == 422, r.text


async def test_no_check_constraint_lists_provider_names(api: httpx.AsyncClient) -> None:
    found = await Db.query_int(
        "select count(*) from pg_constraint where conname = any(?)",
        ["videos_provider_check", "payment_attempts_provider_check"],
    )
    assert found == 0
