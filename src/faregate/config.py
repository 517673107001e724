"""The one typed Settings object. Read from FAREGATE_* variables and an optional TOML file."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from faregate.kit.secretfile import load_or_create_secret

_PG_PREFIXES = ("postgresql://", "postgres://", "postgresql+asyncpg://", "postgresql+psycopg://",
                "postgresql+psycopg2://", "postgresql+pg8000://")


def normalize_database_url(url: str) -> str:
    """Map any SQLAlchemy PostgreSQL URL form to the driver Faregate uses (psycopg 3)."""
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("sqlite+pysqlite://") or url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return url
    raise ValueError("FAREGATE_DATABASE_URL must be a sqlite:// or postgresql:// URL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAREGATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("./var")
    database_url: str = ""
    workers: int = Field(default=1, ge=1, le=64)
    # With workers > 1: a listening socket per worker (SO_REUSEPORT, Linux), so the kernel
    # spreads connections evenly; false = uvicorn's one shared socket.
    reuse_port: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Logs: "text" for people, "json" for log collectors (one object per line; docs/operations.md).
    log_format: Literal["text", "json"] = "text"
    # One log line per /v1 request (logger faregate.access), with its request id.
    access_log: bool = False
    # GET /metrics answers clients in these networks, or anyone with this bearer token.
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    metrics_token: SecretStr | None = None
    config_file: Path | None = None
    redis_url: str = ""

    session_secret: SecretStr | None = None
    key_pepper: SecretStr | None = None
    encryption_key: SecretStr | None = None

    dev_model: bool = True
    dev_model_token_latency_ms: float = Field(default=0.0, ge=0, le=10_000)

    run_background_jobs: bool = True
    # `faregate worker` serves its own metrics (jobs) at http://HOST:PORT/ when PORT is set.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Leasing: how long a lease lives without a heartbeat, and the most one lease takes at once.
    lease_ttl_s: int = Field(default=30, ge=5, le=3600)
    lease_max_nano_usd: int = Field(default=1_000_000_000, ge=1)
    # Margin added to the output reservation for upstreams that overshoot max_tokens (percent).
    overshoot_margin_pct: int = Field(default=10, ge=0, le=1000)
    key_cache_ttl_s: float = Field(default=2.0, ge=0, le=2.0)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_read_timeout_s: float = Field(default=600.0, gt=0)
    # Upstream failover (docs/operators.md, "Upstreams"): breaker, health checks, figures.
    upstream_breaker_failures: int = Field(default=5, ge=1, le=1000)
    upstream_breaker_cooldown_s: float = Field(default=30.0, ge=0.1, le=3600)
    upstream_health_interval_s: float = Field(default=30.0, ge=0)  # 0: no health checks
    upstream_health_timeout_s: float = Field(default=5.0, gt=0, le=60)
    upstream_stats_flush_s: float = Field(default=5.0, ge=0.1, le=300)
    max_request_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Hostile clients (docs/operations.md, "Limits and hostile input"): bodies of the JSON API
    # and the pages (/v1 has max_request_body_bytes), the request head, and how long a client
    # may take to send one whole request (head and body: slow-loris).
    max_api_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    request_read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    keep_alive_timeout_s: int = Field(default=5, ge=1, le=600)
    # Strict-Transport-Security max-age on every response; 0 (the default) sends none. Turn
    # it on only when clients reach Faregate over HTTPS (a TLS-terminating load balancer).
    hsts_max_age_s: int = Field(default=0, ge=0)
    auth_failures_per_minute: int = Field(default=60, ge=1)

    # The address people reach Faregate at (links in emails); derived from host/port if unset.
    public_url: str = ""
    # Addresses (IPs or CIDR networks) of load balancers whose X-Forwarded-For/-Proto we trust.
    trusted_proxies: list[str] = Field(default_factory=list)

    # Accounts and sessions.
    session_ttl_s: int = Field(default=14 * 86400, ge=60)
    session_idle_s: int = Field(default=3 * 86400, ge=60)
    password_min_length: int = Field(default=10, ge=8, le=128)
    email_verify_ttl_s: int = Field(default=48 * 3600, ge=60)
    password_reset_ttl_s: int = Field(default=3600, ge=60)
    invitation_ttl_s: int = Field(default=7 * 86400, ge=60)
    # Throttles: attempts per window (15 minutes for sign-in, one hour for the rest).
    sign_in_attempts_per_account: int = Field(default=10, ge=1)
    sign_in_attempts_per_ip: int = Field(default=50, ge=1)
    sign_ups_per_ip_per_hour: int = Field(default=20, ge=1)
    password_resets_per_account_per_hour: int = Field(default=5, ge=1)
    password_resets_per_ip_per_hour: int = Field(default=20, ge=1)
    # Operators (the /admin console): their own sessions and sign-in limits (per 15 minutes).
    operator_session_ttl_s: int = Field(default=12 * 3600, ge=60)
    operator_session_idle_s: int = Field(default=30 * 60, ge=60)
    operator_sign_in_attempts_per_account: int = Field(default=10, ge=1)
    operator_sign_in_attempts_per_ip: int = Field(default=30, ge=1)

    # Email: "outbox" writes each message to data_dir/outbox/email.jsonl; "smtp" sends it.
    email_sender: Literal["outbox", "smtp"] = "outbox"
    email_from: str = "Faregate <no-reply@faregate.localhost>"
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True

    # SMS: "outbox" writes each message to data_dir/outbox/sms.jsonl; "twilio" sends it.
    sms_sender: Literal["outbox", "twilio"] = "outbox"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None

    # Phone verification.
    require_phone_for_keys: bool = True
    phone_allowed_types: list[str] = Field(
        default_factory=lambda: ["MOBILE", "FIXED_LINE_OR_MOBILE"])
    phone_allowed_countries: list[str] | None = None
    phone_blocked_countries: list[str] = Field(default_factory=list)
    phone_max_accounts: int = Field(default=3, ge=1)
    phone_code_ttl_s: int = Field(default=600, ge=60)
    phone_code_max_attempts: int = Field(default=5, ge=1)
    phone_resend_cooldown_s: int = Field(default=60, ge=0)
    phone_codes_per_number_per_hour: int = Field(default=5, ge=1)
    phone_codes_per_account_per_hour: int = Field(default=5, ge=1)
    phone_codes_per_ip_per_hour: int = Field(default=20, ge=1)

    # Payments: "sandbox" (the default: Stripe's test mode, simulated, offline) or "stripe".
    payments_processor: Literal["sandbox", "stripe"] = "sandbox"
    # The sandbox refuses to serve on a non-loopback address unless this is set (and then the
    # dashboard says that payments are simulated).
    sandbox_payments_public: bool = False
    stripe_secret_key: SecretStr | None = None
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None  # e.g. a localstripe URL in tests
    # Wallets a top-up may be paid with instead of a card: "alipay,wechat_pay" (none by
    # default; they must be enabled in the Stripe dashboard too). The sandbox simulates them.
    stripe_wallets: Annotated[list[Literal["alipay", "wechat_pay"]], NoDecode] = Field(
        default_factory=list)
    topup_min_usd: str = "5"
    topup_max_usd: str = "50"
    card_verification_usd: str = "5"
    # Two consecutive failed charges suspend billing; a successful payment lifts it unless an
    # operator must (then set this to false).
    reinstate_on_payment: bool = True
    failed_charges_to_suspend: int = Field(default=2, ge=1)
    # Card binding is refused from these networks (e.g. known proxy or data-centre ranges).
    risk_blocked_networks: list[str] = Field(default_factory=list)
    # An IP-to-country CSV (start_ip,end_ip,country_code rows, e.g. DB-IP's country lite):
    # when set, a card whose billing country differs from the client address's country is
    # recorded for review, or refused with "block".
    risk_ip_country_csv: Path | None = None
    risk_country_mismatch: Literal["review", "block"] = "review"
    # Paid credit (top-ups, auto-recharges, redemption codes) expires this many months after it
    # lands; 0: paid credit does not expire. Promotional grants expire only when given a date.
    credit_expiry_months: int = Field(default=12, ge=0, le=120)
    # Request logging (docs/usage.md#request-logging): request and response bodies, encrypted,
    # of the organizations an operator turned it on for ("off"), or of every request ("all").
    request_log: Literal["off", "all"] = "off"
    request_log_retention_days: int = Field(default=7, ge=1, le=90)
    request_log_max_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)

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
        config_file = os.environ.get("FAREGATE_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("stripe_wallets", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [w.strip() for w in value.split(",") if w.strip()]
        return value

    @field_validator("risk_ip_country_csv", mode="before")
    @classmethod
    def _csv_exists(cls, value: object) -> Path | None:
        if value is None or value == "":
            return None
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ValueError(f"FAREGATE_RISK_IP_COUNTRY_CSV: no such file: {value}")
        return path.resolve()

    @field_validator("database_url")
    @classmethod
    def _map_driver(cls, value: str) -> str:
        return normalize_database_url(value) if value else value

    @cached_property
    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'faregate.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def secret(self, name: Literal["session_secret", "key_pepper", "encryption_key",
                                   "sandbox_webhook_secret"]) -> bytes:
        """A configured secret, or one generated once into the data dir (mode 0600)."""
        value: SecretStr | None = getattr(self, name, None)
        if value is not None:
            return value.get_secret_value().encode()
        return load_or_create_secret(self.resolved_data_dir / "secrets" / name)

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def public_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude={"session_secret", "key_pepper", "encryption_key",
                                        "smtp_password", "twilio_auth_token", "metrics_token",
                                        "stripe_secret_key", "stripe_webhook_secret"})


def get_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
