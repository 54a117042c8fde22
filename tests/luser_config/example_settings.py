"""A small application schema for luser_config's own tests: what an application adds
to ``Settings`` (a token section, a nested partner section, open-ended flags)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from luser_config import Section, Settings


class AuthConfig(Section):
    secret: SecretStr = Field(
        default=SecretStr("dev-insecure-example-secret"), description="token signing key"
    )
    ttl_seconds: int = Field(default=900, ge=30, le=86400, description="token lifetime")


class ShopConfig(Section):
    enabled: bool = False
    app_id: str = Field(default="", description="the partner's id for us")
    api_key: SecretStr = Field(default=SecretStr(""), description="32 ASCII chars")
    # A secret whose name does not look secret: only the schema knows.
    signing_pem: SecretStr = Field(default=SecretStr(""), description="PEM")


class MediaConfig(Section):
    secret_key: SecretStr = SecretStr("")
    region: str = Field(default="", pattern="^[a-z-]*$")


class PartnerConfig(Section):
    timeout_seconds: float = Field(default=15, gt=0, le=120)
    shop: ShopConfig = Field(default_factory=ShopConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)


class FlagsConfig(BaseModel):
    """Named flags plus any other ``name = true/false``."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, bool] = Field(init=False)

    signup: bool = Field(default=True, description="allow new accounts")

    def enabled(self, name: str) -> bool:
        return bool(getattr(self, name, False))


class ExampleSettings(Settings):
    auth: AuthConfig = Field(default_factory=AuthConfig)
    partner: PartnerConfig = Field(default_factory=PartnerConfig)
    features: FlagsConfig = Field(default_factory=FlagsConfig)
