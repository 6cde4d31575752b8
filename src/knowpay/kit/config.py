"""Settings: environment variables `KNOWPAY_*` (nested with `__`) and an optional TOML file.

The TOML file is named by `KNOWPAY_CONFIG`; environment variables win over it.
A PEM value may be given inline or as a path to a file holding it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///./var/knowpay.db"
_INSECURE_DEV_SECRET = "knowpay-dev-secret-change-me-in-production-0123456789"  # noqa: S105 - refused in production


def _load_pem(value: str | None) -> str | None:
    """Return PEM text given inline (also with literal `\\n`) or as a path to a file."""
    if value is None or value == "":
        return None
    text = value.strip()
    if "-----BEGIN" in text:
        return text.replace("\\n", "\n")
    path = Path(text).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if len(text) > 200 and "/" not in text[:1]:
        # A bare base64 key body, as the gateways' consoles show it.
        return text
    raise ValueError(f"not a PEM value and no such file: {text[:60]}")


Pem = Annotated[str | None, AfterValidator(_load_pem)]


class GatewaySettings(BaseModel):
    """Fields every gateway shares."""

    model_config = {"extra": "forbid"}

    enabled: bool = True
    timeout_s: float = 10.0


class AlipaySettings(GatewaySettings):
    app_id: str | None = None
    private_key: Pem = None
    alipay_public_key: Pem = None
    gateway_url: str = "https://openapi.alipay.com/gateway.do"
    seller_id: str | None = None


class WechatPaySettings(GatewaySettings):
    mchid: str | None = None
    appid: str | None = None
    merchant_private_key: Pem = None
    merchant_serial_no: str | None = None
    apiv3_key: SecretStr | None = None
    platform_public_key: Pem = None
    platform_serial_no: str | None = None
    base_url: str = "https://api.mch.weixin.qq.com"


class UnionPaySettings(GatewaySettings):
    mer_id: str | None = None
    sign_cert: Pem = None
    sign_private_key: Pem = None
    sign_cert_id: str | None = None
    verify_cert: Pem = None
    front_url: str = "https://gateway.95516.com/gateway/api/frontTransReq.do"
    back_url: str = "https://gateway.95516.com/gateway/api/backTransReq.do"
    query_url: str = "https://gateway.95516.com/gateway/api/queryTrans.do"


class StripeSettings(GatewaySettings):
    secret_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    base_url: str = "https://api.stripe.com"


class PayPalSettings(GatewaySettings):
    client_id: str | None = None
    client_secret: SecretStr | None = None
    webhook_id: str | None = None
    base_url: str = "https://api-m.paypal.com"


class PasswordHashSettings(BaseModel):
    """argon2id cost; the defaults are the RFC 9106 second recommendation."""

    model_config = {"extra": "forbid"}

    time_cost: int = Field(default=3, ge=1)
    memory_cost_kib: int = Field(default=65536, ge=8)
    parallelism: int = Field(default=4, ge=1)


class WorkerSettings(BaseModel):
    """The background loops: outbox dispatch, webhook delivery and scheduled jobs."""

    model_config = {"extra": "forbid"}

    in_process: bool | None = None
    """Run the loops inside `knowpay serve`; by default only on the embedded SQLite database."""
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_retry_window_s: int = Field(default=72 * 3600, ge=24 * 3600)
    webhook_max_in_flight: int = Field(default=16, ge=1)
    query_after_s: int = Field(default=60, ge=1)
    reminder_lead_s: int = Field(default=300, ge=0)
    jobs_interval_s: float = Field(default=15.0, gt=0)
    idle_wait_s: float = Field(default=0.5, gt=0)


class RefundSettings(BaseModel):
    """The refund policy, as data: change it without changing code."""

    model_config = {"extra": "forbid"}

    auto_approve_window_days: int = Field(default=7, ge=0)
    """Requests this soon after payment are approved automatically when small or unused."""
    auto_approve_max_minor: int = Field(default=20000, ge=0)
    """The largest amount (in the order currency's minor units) approved automatically."""
    buyer_request_window_days: int = Field(default=365, ge=1)
    """After this a buyer can no longer ask (apps and staff still can)."""
    revoke_on_partial: bool = False
    """Whether a partial refund also takes the content away (a full refund always does)."""
    check_after_s: int = Field(default=60, ge=1)
    """A refund the gateway is still processing is asked about after this long."""


class Settings(BaseSettings):
    """Everything knowpay reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="KNOWPAY_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = "http://127.0.0.1:8000"
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr(_INSECURE_DEV_SECRET)
    environment: str = "development"

    # Per process: `serve --workers 4` opens up to 4 × 20 connections to PostgreSQL. A request
    # waits up to the pool timeout for one (then 503 database_unavailable, Retry-After).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=15000, ge=0)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    access_token_ttl_s: int = Field(default=3600, ge=60)
    payment_password_max_tries: int = Field(default=5, ge=1)
    payment_password_lock_s: int = Field(default=1800, ge=1)
    password_hash: PasswordHashSettings = PasswordHashSettings()
    worker: WorkerSettings = WorkerSettings()
    refunds: RefundSettings = RefundSettings()

    alipay: AlipaySettings = AlipaySettings()
    wechatpay: WechatPaySettings = WechatPaySettings()
    unionpay: UnionPaySettings = UnionPaySettings()
    stripe: StripeSettings = StripeSettings()
    paypal: PayPalSettings = PayPalSettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("KNOWPAY_DATABASE_URL must be sqlite:///… or postgresql://…")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def uses_insecure_secret(self) -> bool:
        """True while the development master key is in use."""
        return self.secret_key.get_secret_value() == _INSECURE_DEV_SECRET

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("KNOWPAY_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and the TOML file), with explicit overrides."""
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
