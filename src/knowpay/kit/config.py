"""Settings: environment variables `KNOWPAY_*` (nested with `__`) and an optional TOML file.

The TOML file is named by `KNOWPAY_CONFIG`; environment variables win over it.
A PEM value may be given inline or as a path to a file holding it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many as _parse_rate_limits
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from knowpay.kit.money import MoneyError, normalize_currency
from knowpay.kit.urls import url_origin

DEFAULT_DATABASE_URL = "sqlite:///./var/knowpay.db"
_INSECURE_DEV_SECRET = "knowpay-dev-secret-change-me-in-production-0123456789"  # noqa: S105 - refused in production
MIN_PRODUCTION_SECRET_CHARS = 32
"""A production master key is at least this long (`secrets rotate` asks the same)."""


class ConfigFileError(ValueError):
    """The file KNOWPAY_CONFIG names cannot be read as TOML."""


def _lower_keys(table: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """TOML keys as the environment's are read: setting names in any case (`[ALIPAY]`
    `APP_ID`); the keys of a setting that is itself a mapping (`csp_by_prefix`'s paths)
    are data, kept as written."""
    lowered: dict[str, Any] = {}
    for key, value in table.items():
        name = key.lower()
        field = model.model_fields.get(name)
        section = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(section, type) and issubclass(section, BaseModel):
            value = _lower_keys(value, section)
        lowered[name if field is not None else key] = value
    return lowered


def read_config_file(path: Path, model: type[BaseModel]) -> dict[str, Any]:
    """The settings a TOML file holds; ConfigFileError when it is missing or is not TOML (a
    file named and not read would leave the process on defaults, without a word)."""
    try:
        with path.open("rb") as handle:
            return _lower_keys(tomllib.load(handle), model)
    except OSError as exc:
        raise ConfigFileError(
            f"KNOWPAY_CONFIG names {str(path)!r}, which cannot be read: {exc.strerror}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"KNOWPAY_CONFIG names {str(path)!r}, not TOML: {exc}") from exc


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
    root_cert: Pem = None
    """UnionPay's root CA (PEM): every signPubKeyCert must chain to it through middle_cert."""
    middle_cert: Pem = None
    expected_cert_cn: str = "中国银联股份有限公司"
    """The owner named in signPubKeyCert's CN (UnionPay's test environment: 00040000:SIGN)."""
    form_url: str | None = None
    """Where knowpay serves the auto-submitting front form; default {public_url}/forms/unionpay."""
    front_url: str = "https://gateway.95516.com/gateway/api/frontTransReq.do"
    back_url: str = "https://gateway.95516.com/gateway/api/backTransReq.do"
    query_url: str = "https://gateway.95516.com/gateway/api/queryTrans.do"
    file_url: str | None = None
    """Where the settlement file is asked for (file transfer, txnType 76); default: UnionPay's
    file host beside the query URL's gateway host (filedownload.95516.com, or its test twin),
    or the root of the query URL's base for any other host (the simulator, a proxy)."""


class StripeSettings(GatewaySettings):
    secret_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    base_url: str = "https://api.stripe.com"
    publishable_key: str | None = None
    """pk_…: public, for the payer's page (Stripe.js) together with the client secret."""
    api_version: str = "2024-06-20"
    """Sent as Stripe-Version on every call, so answers keep the shape the adapter reads."""
    previous_webhook_secrets: list[SecretStr] = []
    """Endpoint secrets still accepted while the endpoint's secret is being rolled."""
    webhook_tolerance_s: int = Field(default=300, ge=1)
    """How old a webhook's signed timestamp may be (Stripe's libraries default to 300 s)."""
    currencies: list[str] = ["USD", "EUR", "GBP", "JPY", "KRW", "HKD", "SGD", "AUD", "CAD", "CNY"]
    """The presentment currencies this account charges in."""
    countries: list[str] = []
    """ISO 3166 alpha-2 codes of the payers served; empty means any."""
    payer_page_url: str | None = None
    """A page that confirms a PaymentIntent, with `{id}` and `{client_secret}` placeholders
    (the sandbox's test payer page in the demo); None when the cashier runs Stripe.js."""


class PayPalSettings(GatewaySettings):
    client_id: str | None = None
    client_secret: SecretStr | None = None
    webhook_id: str | None = None
    base_url: str = "https://api-m.paypal.com"
    currencies: list[str] = ["USD", "EUR", "GBP", "JPY", "HKD", "AUD", "CAD", "SGD"]
    """The currencies this account charges in (a deployment may keep only USD)."""
    verify_mode: str = "postback"
    """Webhook verification: `postback` (ask PayPal's verify-webhook-signature) or `offline`
    (check the signature with the certificate named by PAYPAL-CERT-URL)."""
    cert_hosts: list[str] = ["*.paypal.com"]
    """Hosts PAYPAL-CERT-URL may name for offline verification (`*.` matches subdomains;
    `host:port` entries and loopback hosts are for the sandbox)."""

    @field_validator("verify_mode")
    @classmethod
    def _known_verify_mode(cls, value: str) -> str:
        if value not in ("postback", "offline"):
            raise ValueError("verify_mode must be postback or offline")
        return value


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


class WalletSettings(BaseModel):
    """The knowledge-coin wallet: which currencies it holds and how much one top-up may be."""

    model_config = {"extra": "forbid"}

    currencies: list[str] = ["CNY"]
    """Currencies a wallet holds (a top-up or wallet payment in another is refused)."""
    top_up_min_minor: int = Field(default=100, ge=1)
    """The smallest top-up, in the currency's minor units (1.00 CNY)."""
    top_up_max_minor: int = Field(default=500_000, ge=1)
    """The largest single top-up, in the currency's minor units (5,000.00 CNY)."""
    max_balance_minor: int = Field(default=5_000_000, ge=1)
    """A top-up that would take a balance above this is refused (50,000.00 CNY): a stored
    balance is the platform's debt, and regulators cap prepaid value."""

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: list[str]) -> list[str]:
        try:
            return [normalize_currency(code) for code in value]
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc


class RevenueShareSettings(BaseModel):
    """Creators' share of the sales of their products."""

    model_config = {"extra": "forbid"}

    creator_share_bps: int = Field(default=7000, ge=0, le=10000)
    """The creator's share of a line's amount, in basis points (7000: 70 %), as it stands
    when the order is made; the platform keeps the rest, and the rounding."""


class SubscriptionSettings(BaseModel):
    """Memberships renewed from the wallet: when a renewal is charged, and dunning."""

    model_config = {"extra": "forbid"}

    renew_before_s: int = Field(default=3600, ge=0, le=7 * 86400)
    """How long before a period ends its renewal is charged: the new period then follows
    the old one without a gap (a charge after the end would start it from the charge)."""
    remind_before_s: int = Field(default=5 * 86400, ge=0, le=30 * 86400)
    """How long before a renewal's charge the app hears `subscription.renewal_upcoming`, once
    a period, to tell the buyer (China's rules for auto-renewal ask for notice five days
    before the charge); 0: never."""
    retry_delays_s: list[int] = [86400, 3 * 86400, 5 * 86400]
    """Dunning: after a renewal fails (the balance too low, a limit, risk control), wait
    this long before each next try; when the last try fails the subscription is canceled.
    The renewal order stays payable through any channel until the next try."""

    @field_validator("retry_delays_s")
    @classmethod
    def _positive_delays(cls, value: list[int]) -> list[int]:
        if len(value) > 10 or any(delay < 60 or delay > 30 * 86400 for delay in value):
            raise ValueError("up to 10 delays, each from 60 s to 30 days")
        return value


class ChannelHealthSettings(BaseModel):
    """Circuit breaking and routing between channels."""

    model_config = {"extra": "forbid"}

    breaker_fail_max: int = Field(default=5, ge=1)
    """Consecutive failed calls (errors or timeouts, not declines) that open a breaker."""
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0)
    """How long an open breaker refuses calls before letting a trial call through."""
    window_s: int = Field(default=300, ge=1)
    """The rolling window of the success rate and latency shown to staff."""
    window_max_calls: int = Field(default=2000, ge=10)
    preference: list[str] = [
        "alipay_qr",
        "wechat_native",
        "alipay_page",
        "alipay_wap",
        "wechat_h5",
        "wechat_jsapi",
        "unionpay",
        "stripe",
        "paypal",
        "test",
    ]
    """Routing order: when the payer names no channel, the first one that can pay is used."""


class LimitSettings(BaseModel):
    """How spending limits count (the limits themselves are data: /v1/admin/limits)."""

    model_config = {"extra": "forbid"}

    timezone: str = "Asia/Shanghai"
    """Where a limit's day and month begin."""
    near_percent: int = Field(default=80, ge=1, le=100)
    """`limit.near` is sent once per period when usage reaches this share of a limit."""

    @field_validator("timezone")
    @classmethod
    def _a_known_time_zone(cls, value: str) -> str:
        """Refused at start: an unknown zone would fail every payment a limit applies to."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone") from None
        return value


def _rate_limit(value: str) -> str:
    """A `limits` rate string such as `10/minute` or `5/minute;100/hour`."""
    try:
        if not _parse_rate_limits(value):
            raise ValueError(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit like '10/minute': {value!r}") from exc
    return value


RateLimitString = Annotated[str, AfterValidator(_rate_limit)]


class RateLimitSettings(BaseModel):
    """Request rate limits (the `limits` library): in process memory by default, shared by
    every process through Redis when KNOWPAY_REDIS_URL is set. A 429 carries Retry-After."""

    model_config = {"extra": "forbid"}

    enabled: bool = True
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "moving-window"
    api_per_key: RateLimitString = "1000/second"
    """Each app's API key (by its keyed hash), on every limited route. The key carries all of
    a platform's server traffic (a course launch's orders, payments, status polls and
    entitlement checks): a budget that stops a runaway client without throttling a sale."""
    api_per_person: RateLimitString = "100/second"
    """Each logged-in person (by the token's subject), on every limited route."""
    api_per_ip: RateLimitString = "300/minute"
    """Each client IP, for calls without valid credentials (failed authentications count)."""
    login_per_ip: RateLimitString = "10/minute"
    """POST /v1/auth/token tries from one client IP, right or wrong."""
    login_per_account: RateLimitString = "5/minute"
    """POST /v1/auth/token tries naming one email (kept as a hash), right or wrong."""
    payment_password: RateLimitString = "5/minute"  # noqa: S105 - a rate, not a password
    """Tries of one person's payment password (verify, set or change), checked before the
    password is looked at and before the lockout counter moves."""
    exempt_prefixes: list[str] = []
    """More path prefixes never limited; /notify/, /healthz, /readyz and /metrics never are."""
    key_prefix: str = Field(default="knowpay:rl", min_length=1, max_length=64)
    """Prefix of the counters' keys in Redis."""
    storage_timeout_s: float = Field(default=0.5, gt=0)
    """How long a Redis call may take; when Redis fails the request goes through (logged)."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULT_CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


class SecurityHeaderSettings(BaseModel):
    """Headers every response carries (Content-Security-Policy, HSTS, nosniff, …)."""

    model_config = {"extra": "forbid"}

    content_security_policy: str = DEFAULT_CSP
    csp_by_prefix: dict[str, str] = {}
    """Policies for path prefixes (the longest matching prefix wins); they replace knowpay's
    own for /docs and /forms/ when given for those prefixes."""
    hsts_max_age_s: int = Field(default=31_536_000, ge=0)
    """Strict-Transport-Security on responses to HTTPS requests (or when public_url is
    https); 0 leaves the header out."""
    hsts_include_subdomains: bool = False
    referrer_policy: str = "no-referrer"


def _comma_list(value: Any) -> Any:
    """Accept a list, a JSON array or comma-separated text (`a,b`) from the environment."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


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
    # Master keys stored secrets may still be sealed under while a rotation is under way:
    # opened with, never sealed with (docs/audit.md, "Rotating the master key").
    previous_secret_keys: list[SecretStr] = []
    environment: Literal["development", "test", "staging", "production"] = "development"

    # Per process: `serve --workers 4` opens up to 4 × 20 connections to PostgreSQL. A request
    # waits up to the pool timeout for one (then 503 database_unavailable, Retry-After).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=15000, ge=0)
    # Per process: how many requests run in worker threads at once (`kit.request_threads`);
    # the others wait on the event loop, and one waiting on a gateway lends its turn.
    request_threads: int = Field(default=4, ge=1)

    # How often each process looks for gateway credentials changed in the database and
    # rebuilds those gateways' channels (`credentials.refresh`); 0: only when it starts.
    credentials_refresh_s: float = Field(default=10.0, ge=0)

    # When set, `GET /metrics` asks for `Authorization: Bearer <this>` (Prometheus'
    # `authorization` in its scrape config); unset, it is open, for a network that keeps it in.
    metrics_token: SecretStr | None = None

    # Whether apps may point webhooks at private, loopback and link-local addresses (and at
    # plain http): by default everywhere but in production (`webhooks.targets`).
    webhook_private_targets: bool | None = None

    # knowpay's own loggers in `serve`, `demo` and `worker` (`kit.logs`): their level, and
    # text beside uvicorn's lines or every line of the process as a JSON object.
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # FastAPI's own OpenTelemetry spans and HTTP metrics, for a process with a configured
    # provider. Off by default: knowpay's metrics are on /metrics, and the hooks cost CPU on
    # every request even with no provider to send to.
    opentelemetry: bool = False

    # How long `serve` and `demo` keep an idle client connection open (uvicorn's
    # `timeout_keep_alive`, default 5 s): longer than the clients and load balancers in front
    # keep theirs (httpx 5 s, aiohttp 15 s, AWS ALB 60 s), so that the client closes it; a
    # request sent on a connection the server is closing at that moment fails at the client.
    keep_alive_s: int = Field(default=75, ge=1)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    access_token_ttl_s: int = Field(default=3600, ge=60)
    payment_password_max_tries: int = Field(default=5, ge=1)
    payment_password_lock_s: int = Field(default=1800, ge=1)
    password_hash: PasswordHashSettings = PasswordHashSettings()
    worker: WorkerSettings = WorkerSettings()
    refunds: RefundSettings = RefundSettings()
    wallet: WalletSettings = WalletSettings()
    revenue_share: RevenueShareSettings = RevenueShareSettings()
    subscriptions: SubscriptionSettings = SubscriptionSettings()
    channels: ChannelHealthSettings = ChannelHealthSettings()
    limits: LimitSettings = LimitSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    security_headers: SecurityHeaderSettings = SecurityHeaderSettings()
    cors_origins: CommaList = []
    """Origins (scheme://host[:port]) whose pages may call the API; empty: none may."""
    return_url_origins: CommaList = []
    """Origins a buyer-set payment `return_url` may lead to, besides knowpay's own and the
    CORS origins (an app's key may name any): `/return/{id}` is then no open redirect."""
    trusted_proxies: CommaList = []
    """Addresses or networks of reverse proxies whose X-Forwarded-For/-Proto are believed."""

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

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"KNOWPAY_LOG_LEVEL is one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("environment", mode="before")
    @classmethod
    def _environment_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        """Every notify_url, return_url and cashier link is built on it: http(s) and a host."""
        origin = url_origin(value.rstrip("/"))
        if origin is None or not value.startswith(("http://", "https://")):
            raise ValueError("KNOWPAY_PUBLIC_URL is an http(s) URL such as https://pay.example.com")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("KNOWPAY_REDIS_URL is redis://, rediss:// or unix://")
        return value or None

    @model_validator(mode="after")
    def _a_real_key_in_production(self) -> Settings:
        """Production never runs on the development key (it is in the source) or on a short
        one: every command refuses, not only `serve` (`gateways set` would seal with it)."""
        if self.environment == "production":
            if self.uses_insecure_secret:
                raise ValueError(
                    "KNOWPAY_SECRET_KEY must be set in production (it is the development key)"
                )
            if len(self.secret_key.get_secret_value()) < MIN_PRODUCTION_SECRET_CHARS:
                raise ValueError(
                    f"KNOWPAY_SECRET_KEY has at least {MIN_PRODUCTION_SECRET_CHARS} characters "
                    "in production"
                )
        return self

    @field_validator("cors_origins", "return_url_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        origins = [origin.rstrip("/") for origin in value]
        for origin in origins:
            if not _ORIGIN.match(origin) or url_origin(origin) is None:
                raise ValueError(
                    f"an origin is scheme://host[:port], without wildcards: {origin!r}"
                )
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

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
            values = read_config_file(Path(config_file), settings_cls)
            sources.append(InitSettingsSource(settings_cls, init_kwargs=values))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and the TOML file), with explicit overrides."""
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
