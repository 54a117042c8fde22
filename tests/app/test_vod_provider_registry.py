"""The VOD registry is the one place a provider is named: a third provider registered
with one line gets a typed config section (validated, ENC() decrypted, redacted,
documented, set by environment variables), is usable by a video, reachable on the
callback route and started by the sandbox; every registered provider is wired the same
way."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pydantic
import pytest
from click.testing import CliRunner

from app.catalog.routes.admin import VideoCreateBody
from app.config_checks import provider_problems
from app.sandbox.runtime import Sandbox, load_stand_in
from app.settings import AppConfig, VodConfig, app_schema
from app.vod.registry import VOD_PROVIDERS, VodRegistry, vod_section
from luser_config import KeyRing, generate_key, load_config
from luser_config._docs import render_keys
from luser_config.cli import config_group
from luser_db import Db

from .conftest import Account, MakeAccount
from .fake_vod import SPEC, FakeVodProvider, FakeVodSandbox


@pytest.fixture
def fake_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VOD_PROVIDERS, "fake", SPEC)  # the one registry line


FAKE_CONFIG = {"vod": {"default_provider": "fake", "fake": {"cdn": "https://cdn.example"}}}


def test_the_config_refuses_a_provider_nobody_registered() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        app_schema().model_validate(FAKE_CONFIG)
    assert [e["loc"] for e in caught.value.errors()] == [("vod", "fake")]
    problems = provider_problems(app_schema().model_validate({"vod": {"default_provider": "x"}}))
    assert any(p.startswith("vod.default_provider") for p in problems), problems


def test_the_config_accepts_a_registered_third_provider(fake_registered: None) -> None:
    for schema in (app_schema(), AppConfig):  # the loaded schema, and the declared one
        config = schema.model_validate(FAKE_CONFIG)
        assert provider_problems(config) == []
        provider = VodRegistry(config.vod).get()
        assert isinstance(provider, FakeVodProvider)
        assert provider.config.cdn == "https://cdn.example"
    with pytest.raises(pydantic.ValidationError) as caught:
        app_schema().model_validate({"vod": {"fake": {"cdn": 1, "colour": "red"}}})
    assert sorted(e["loc"] for e in caught.value.errors()) == [
        ("vod", "fake", "cdn"),
        ("vod", "fake", "colour"),
    ]


def test_a_config_loaded_before_registration_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = app_schema()()
    monkeypatch.setitem(VOD_PROVIDERS, "fake", SPEC)
    assert provider_problems(loaded) == ["vod.fake 未在加载配置前注册"]
    assert provider_problems(app_schema()()) == []


def test_the_third_providers_section_is_loaded_like_a_built_in_one(
    fake_registered: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key("k")
    token = KeyRing.parse(key).encrypt("s3cret-token", "vod.fake.callback_token")
    (tmp_path / "default.toml").write_text(
        f'[vod]\ndefault_provider = "fake"\n[vod.fake]\ncallback_token = "{token}"\n'
    )
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", key)
    monkeypatch.setenv("LUSER__VOD__FAKE__CDN", "https://env.example")
    config = load_config("test", tmp_path)
    section = vod_section(config.vod, "fake")
    assert section.model_dump() == {
        "cdn": "https://env.example",
        "callback_token": pydantic.SecretStr("s3cret-token"),
    }
    assert section.callback_token.get_secret_value() == "s3cret-token"  # type: ignore[attr-defined]

    shown = CliRunner().invoke(
        config_group, ["show", "--env", "test", "--config-dir", str(tmp_path), "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    assert "s3cret-token" not in shown.output
    rows = json.loads(shown.output)
    assert rows["vod.fake.callback_token"]["value"] == "******"
    assert rows["vod.fake.cdn"] == {
        "value": "https://env.example",
        "source": "env:LUSER__VOD__FAKE__CDN",
    }
    docs = render_keys()
    assert "| `vod.fake.cdn` | str |" in docs
    assert "| `vod.fake.callback_token` | secret str |" in docs


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
    config = app_schema().model_validate({**FAKE_CONFIG, "sandbox": {"public_url": "http://svc"}})
    async with Sandbox(config) as sandboxed:
        assert len(FakeVodSandbox.running) == 1
        section = vod_section(sandboxed.vod, "fake")
        assert section.model_dump() == {
            "cdn": "http://svc/fake-cdn",
            "callback_token": pydantic.SecretStr("sandbox-token"),
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
