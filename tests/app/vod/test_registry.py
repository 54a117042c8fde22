"""Choosing providers by name, and the package's public surface."""

from __future__ import annotations

import inspect

import pytest

import app.vod
from app.settings import VodConfig, vod_config_model
from app.vod import AliyunVodProvider, TencentVodProvider, VodProvider, VodRegistry, provider_for
from luser_common import ValidationError


def test_provider_for_builds_each_provider_from_its_section() -> None:
    config = vod_config_model().model_validate(
        {"tencent": {"secret_id": "AKIDx"}, "aliyun": {"access_key_id": "LTAIx"}}
    )
    tencent = provider_for("tencent", config)
    aliyun = provider_for("aliyun", config)
    assert isinstance(tencent, TencentVodProvider) and tencent.config.secret_id == "AKIDx"
    assert isinstance(aliyun, AliyunVodProvider) and aliyun.config.access_key_id == "LTAIx"


def test_unknown_provider_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        provider_for("youtube", VodConfig())
    assert caught.value.status_code == 422 and caught.value.field == "provider"


async def test_registry_defaults_and_reuses_instances() -> None:
    registry = VodRegistry(VodConfig(default_provider="aliyun"))
    assert isinstance(registry.get(), AliyunVodProvider)
    assert registry.get() is registry.get("aliyun")
    assert isinstance(registry.get("tencent"), TencentVodProvider)
    await registry.aclose()
    assert registry.get("tencent") is not None


def test_exported_members() -> None:
    public = {
        name
        for name, value in vars(app.vod).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(app.vod.__all__) == public


def test_providers_implement_the_whole_interface() -> None:
    for cls in (TencentVodProvider, AliyunVodProvider):
        assert issubclass(cls, VodProvider) and not inspect.isabstract(cls)
        for method in ("upload_credentials", "media_info", "play_url", "parse_callback"):
            assert inspect.iscoroutinefunction(getattr(cls, method))
