"""Settings: every knob of gql_chat, read from `GQL_CHAT_*` environment variables."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import limits
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gql_chat.domain.budgets import Budget, parse_budget
from gql_chat.domain.model_access import parse_patterns

ENV_PREFIX = "GQL_CHAT_"
MIN_JWT_SECRET_BYTES = 32


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class PdfEngine(StrEnum):
    """OpenRouter's `file-parser` plugin engines for PDFs (models that read files natively
    ignore it)."""

    PDF_TEXT = "pdf-text"
    MISTRAL_OCR = "mistral-ocr"
    NATIVE = "native"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
"""A sign-in provider's name: it is part of its URLs (`/auth/oidc/{name}/login`)."""


class OidcProvider(BaseModel):
    """One OpenID Connect provider users may sign in with; its endpoints and keys come from
    `<issuer>/.well-known/openid-configuration`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(pattern=r"^https?://[^\s]+$")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: str = "openid email profile"
    display_name: str | None = None
    """What a sign-in button says; the provider's name when not set."""
    trust_email_verified: bool = True
    """Whether its `email_verified` claim is believed (an address it vouches for may join
    the account that has it). Off for a provider whose users can set any address unchecked."""

    @field_validator("scopes")
    @classmethod
    def _needs_openid(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("must include 'openid'")
        return value


DURATIONS = (
    "access_token_ttl",
    "refresh_token_ttl",
    "file_url_ttl",
    "export_ttl",
    "password_reset_ttl",
    "email_verification_ttl",
    "audit_retention",
)
"""Settings given in seconds or ISO 8601, and positive."""


class Settings(BaseSettings):
    """Validated configuration; invalid values stop start-up with a line naming the variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT

    mongodb_url: SecretStr | None = None
    mongodb_db: str = Field(default="gql_chat", min_length=1, max_length=63)

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "gql_chat"
    jwt_audience: str = "gql_chat"
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=7)

    argon2_time_cost: int = Field(default=2, ge=1, le=10)
    argon2_memory_kib: int = Field(default=19456, ge=8, le=1_048_576)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)

    openrouter_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GQL_CHAT_OPENROUTER_API_KEY", "OPENROUTER_API_KEY"),
    )
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    app_url: str = "https://github.com/gql-chat/gql_chat"
    app_name: str = "gql_chat"
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_first_byte_timeout: float = Field(default=60.0, gt=0)
    upstream_chunk_timeout: float = Field(default=60.0, gt=0)
    upstream_max_retries: int = Field(default=2, ge=0, le=5)
    upstream_retry_backoff: float = Field(default=0.5, ge=0)
    upstream_retry_after_cap: float = Field(default=10.0, ge=0)
    models_cache_ttl: float = Field(default=600.0, ge=0)
    offline_token_delay: float = Field(default=0.02, ge=0)

    default_model: str = Field(default="openai/gpt-4o-mini", min_length=1)
    title_model: str = Field(default="openai/gpt-4o-mini", min_length=1)
    max_message_chars: int = Field(default=100_000, ge=1)
    max_concurrent_generations: int = Field(default=3, ge=1)
    prompt_token_budget: int = Field(default=16_000, ge=256)
    stream_flush_interval: float = Field(default=0.2, gt=0)
    stream_flush_bytes: int = Field(default=2048, ge=1)
    shutdown_grace: float = Field(default=10.0, ge=0)
    max_reply_seconds: float = Field(default=600.0, gt=0)
    max_reply_chars: int = Field(default=500_000, ge=1, le=2_000_000)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    enable_legacy_graphql_ws: bool = False
    enable_introspection: bool | None = None
    enable_graphiql: bool | None = None
    graphiql_assets_url: str = "https://unpkg.com"

    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_fragment_spreads: int = Field(default=100, ge=0)
    max_tokens: int = Field(default=5000, ge=10)
    max_selections: int = Field(default=1000, ge=1)
    max_repeated_fields: int = Field(default=150, ge=1)
    max_document_bytes: int = Field(default=65_536, ge=1024)
    max_response_bytes: int = Field(default=32 * 1_048_576, ge=1024)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_ws_operations: int = Field(default=20, ge=1)
    connection_init_timeout: float = Field(default=10.0, gt=0)
    max_websockets_per_ip: int = Field(default=50, ge=1)
    max_followers_per_user: int = Field(default=10, ge=1)
    max_folders_per_user: int = Field(default=500, ge=1)
    max_presets_per_user: int = Field(default=100, ge=1)
    header_timeout: float = Field(default=10.0, gt=0)
    max_header_bytes: int = Field(default=65_536, ge=4096)
    max_connections: int = Field(default=1000, ge=1)

    max_upload_bytes: int = Field(default=20 * 1_048_576, ge=1024)
    import_max_conversations: int = Field(default=5_000, ge=1)
    import_max_messages: int = Field(default=10_000, ge=1)
    user_storage_bytes: int = Field(default=1_073_741_824, ge=0)
    file_url_ttl: timedelta = timedelta(hours=1)
    export_ttl: timedelta = timedelta(days=1)
    smtp_url: SecretStr | None = None
    mail_from: str = Field(default="gql_chat <no-reply@localhost>", min_length=3)
    mail_outbox: Path = Path(".gql_chat/outbox")
    require_verified_email: bool = False
    password_reset_ttl: timedelta = timedelta(minutes=30)
    email_verification_ttl: timedelta = timedelta(days=2)
    pdf_engine: PdfEngine = PdfEngine.PDF_TEXT
    public_url: str | None = None
    share_url: str | None = None
    """What a share link's token is appended to (your frontend's page that reads it); default
    `<public URL>/shared/`."""

    oidc_providers: dict[str, OidcProvider] = Field(default_factory=dict)
    """JSON: `{"<name>": {"issuer": …, "client_id": …, "client_secret": …, "scopes": …}}`."""
    oidc_redirect_base: str | None = None
    """This server's address as browsers reach it: providers send them back to
    `<base>/auth/oidc/<name>/callback` (register that URL); default the public URL, else the
    request's own."""
    oidc_return_url: str | None = None
    """The frontend page a finished provider sign-in lands on, with `?code=` or `?error=`;
    default `<public URL>/auth/callback`."""

    default_budget: str | None = None
    """Every user's spending limit unless an admin set theirs: `5.00/month`, `0.50/day`."""
    audit_retention: timedelta = timedelta(days=365)
    """How long audit records are kept (a TTL index removes older ones)."""
    models_allowed_user: str = "*"
    """The models users may use unless an admin set theirs: patterns separated by commas,
    `*` for any characters (`openai/*, *:free`); empty: none."""
    models_allowed_admin: str = "*"
    """The same for administrators (default: every model)."""

    redis_url: SecretStr | None = None
    reply_lease: float = Field(default=15.0, ge=1)
    rate_login_per_email: str = "10/minute"
    rate_login_per_ip: str = "30/minute"
    rate_failed_logins_per_account: str = "20/day"
    rate_register_per_ip: str = "5/hour"
    rate_refresh_per_user: str = "30/minute"
    rate_send_message_per_user: str = "30/minute"
    rate_shared_reads_per_ip: str = "120/minute"
    rate_password_reset_per_email: str = "3/hour"
    rate_password_reset_per_ip: str = "20/hour"
    rate_verification_mail_per_user: str = "3/hour"

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _parse_lists(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    @field_validator(
        "rate_login_per_email",
        "rate_login_per_ip",
        "rate_failed_logins_per_account",
        "rate_register_per_ip",
        "rate_refresh_per_user",
        "rate_send_message_per_user",
        "rate_shared_reads_per_ip",
        "rate_password_reset_per_email",
        "rate_password_reset_per_ip",
        "rate_verification_mail_per_user",
    )
    @classmethod
    def _check_rate(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError as exc:
            raise ValueError("must look like '10/minute' or '5 per hour'") from exc
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _check_provider_names(cls, value: dict[str, OidcProvider]) -> dict[str, OidcProvider]:
        for name in value:
            if not PROVIDER_NAME.fullmatch(name):
                raise ValueError(
                    f"provider name {name[:40]!r} must be 1-32 of a-z, 0-9, '_' and '-'"
                )
        return value

    @field_validator("default_budget")
    @classmethod
    def _check_budget(cls, value: str | None) -> str | None:
        if value is not None:
            parse_budget(value)  # ValueError says what is expected
        return value

    @field_validator("models_allowed_user", "models_allowed_admin")
    @classmethod
    def _check_model_patterns(cls, value: str) -> str:
        parse_patterns(value)  # ValueError says what is wrong
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
            raise ValueError("must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG")
        return level

    @field_validator(*DURATIONS, mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        """Plain numbers are seconds; anything else is left to ISO 8601 parsing (e.g. PT15M)."""
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value

    @field_validator(*DURATIONS)
    @classmethod
    def _check_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration (seconds or ISO 8601, e.g. PT15M)")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_JWT_SECRET_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _check_production(self) -> Self:
        """Names every missing setting at once, not one per attempt."""
        if self.env is Environment.PRODUCTION:
            missing = [
                f"{ENV_PREFIX}{name}"
                for name, value in (
                    ("JWT_SECRET", self.jwt_secret),
                    ("MONGODB_URL", self.mongodb_url),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                    "required in production"
                )
            if self.public_url is None and (self.smtp_url or self.oidc_providers):
                # Mailed links and sign-in redirects would be built from the request's Host
                # header, which a client chooses (a poisoned reset link).
                raise ValueError(
                    f"{ENV_PREFIX}PUBLIC_URL is required in production with mail "
                    f"({ENV_PREFIX}SMTP_URL) or sign-in providers ({ENV_PREFIX}OIDC_PROVIDERS)"
                )
            insecure = [
                name
                for name, provider in self.oidc_providers.items()
                if not provider.issuer.startswith("https://")
            ]
            if insecure:
                raise ValueError(
                    f"{ENV_PREFIX}OIDC_PROVIDERS: issuers must be https:// in production "
                    f"({', '.join(insecure)})"
                )
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def introspection_enabled(self) -> bool:
        return (
            self.enable_introspection
            if self.enable_introspection is not None
            else not self.is_production
        )

    @property
    def graphiql_enabled(self) -> bool:
        return self.enable_graphiql if self.enable_graphiql is not None else not self.is_production

    @property
    def default_budget_limit(self) -> Budget | None:
        return parse_budget(self.default_budget) if self.default_budget else None

    @property
    def uses_offline_model(self) -> bool:
        return self.openrouter_api_key is None


def describe_settings_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable, for the start-up failure message."""
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem.get("loc", ()) if part]
        message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        if location:
            lines.append(f"invalid setting {ENV_PREFIX}{location[0].upper()}: {message}")
        else:
            lines.append(f"invalid settings: {message}")
    return "; ".join(lines)
