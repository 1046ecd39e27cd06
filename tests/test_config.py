"""Settings: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from gql_chat.config import Settings, describe_settings_error


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GQL_CHAT_") or name == "OPENROUTER_API_KEY":
            monkeypatch.delenv(name)


PROVIDER = (
    '{"issuer": "http://sso.test", "client_id": "id", "client_secret": "never-shown", '
    '"scopes": "openid email"}'
)


def settings_error(**env: str) -> str:
    import os

    previous = dict(os.environ)
    os.environ.update(env)
    try:
        with pytest.raises(ValidationError) as caught:
            Settings()
        return describe_settings_error(caught.value)
    finally:
        os.environ.clear()
        os.environ.update(previous)


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.mongodb_url is None
    assert settings.mongodb_db == "gql_chat"
    assert settings.access_token_ttl == timedelta(minutes=15)
    assert settings.refresh_token_ttl == timedelta(days=7)
    assert (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism) == (
        2,
        19456,
        1,
    )
    assert settings.openrouter_base_url == "https://openrouter.ai/api/v1"
    assert settings.cors_origins == []


def test_values_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GQL_CHAT_ACCESS_TOKEN_TTL", "PT5M")
    monkeypatch.setenv("GQL_CHAT_REFRESH_TOKEN_TTL", "3600")
    monkeypatch.setenv("GQL_CHAT_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("GQL_CHAT_LOG_LEVEL", "debug")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-plain")
    settings = Settings()
    assert settings.access_token_ttl == timedelta(minutes=5)
    assert settings.refresh_token_ttl == timedelta(hours=1)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.log_level == "DEBUG"
    assert settings.openrouter_api_key is not None
    assert settings.openrouter_api_key.get_secret_value() == "sk-or-plain"
    monkeypatch.setenv("GQL_CHAT_OPENROUTER_API_KEY", "sk-or-prefixed")
    assert Settings().openrouter_api_key.get_secret_value() == "sk-or-prefixed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GQL_CHAT_ACCESS_TOKEN_TTL": "soon"}, "GQL_CHAT_ACCESS_TOKEN_TTL"),
        ({"GQL_CHAT_REFRESH_TOKEN_TTL": "-5"}, "GQL_CHAT_REFRESH_TOKEN_TTL"),
        ({"GQL_CHAT_JWT_SECRET": "short"}, "GQL_CHAT_JWT_SECRET: must be at least 32 bytes"),
        ({"GQL_CHAT_ENV": "staging"}, "GQL_CHAT_ENV"),
        ({"GQL_CHAT_LOG_LEVEL": "loud"}, "GQL_CHAT_LOG_LEVEL"),
        ({"GQL_CHAT_ARGON2_MEMORY_KIB": "1"}, "GQL_CHAT_ARGON2_MEMORY_KIB"),
        (
            {"GQL_CHAT_ENV": "production"},
            "GQL_CHAT_JWT_SECRET and GQL_CHAT_MONGODB_URL are required in production",
        ),
        (
            {"GQL_CHAT_ENV": "production", "GQL_CHAT_MONGODB_URL": "mongodb://db"},
            "GQL_CHAT_JWT_SECRET is required in production",
        ),
        (
            {"GQL_CHAT_ENV": "production", "GQL_CHAT_JWT_SECRET": "s" * 32},
            "GQL_CHAT_MONGODB_URL is required in production",
        ),
        (
            {"GQL_CHAT_OIDC_PROVIDERS": '{"Acme!": ' + PROVIDER + "}"},
            "GQL_CHAT_OIDC_PROVIDERS: provider name 'Acme!' must be 1-32 of a-z, 0-9",
        ),
        ({"GQL_CHAT_OIDC_PROVIDERS": '{"acme": {"issuer": "x"}}'}, "GQL_CHAT_OIDC_PROVIDERS"),
        ({"GQL_CHAT_DEFAULT_BUDGET": "5 dollars"}, "GQL_CHAT_DEFAULT_BUDGET: must look like"),
        (
            {"GQL_CHAT_MODELS_ALLOWED_USER": "openai/*, " + "x" * 201},
            "GQL_CHAT_MODELS_ALLOWED_USER: each pattern must be 1 to 200 characters",
        ),
        (
            {"GQL_CHAT_OIDC_PROVIDERS": '{"acme": ' + PROVIDER.replace("openid ", "") + "}"},
            "must include 'openid'",
        ),
        (
            {
                "GQL_CHAT_ENV": "production",
                "GQL_CHAT_JWT_SECRET": "s" * 32,
                "GQL_CHAT_MONGODB_URL": "mongodb://db",
                "GQL_CHAT_OIDC_PROVIDERS": '{"acme": ' + PROVIDER + "}",
                "GQL_CHAT_PUBLIC_URL": "https://chat.example.com",
            },
            "GQL_CHAT_OIDC_PROVIDERS: issuers must be https:// in production (acme)",
        ),
        (
            {
                "GQL_CHAT_ENV": "production",
                "GQL_CHAT_JWT_SECRET": "s" * 32,
                "GQL_CHAT_MONGODB_URL": "mongodb://db",
                "GQL_CHAT_SMTP_URL": "smtp://mail:25",
            },
            "GQL_CHAT_PUBLIC_URL is required in production with mail",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], expected: str) -> None:
    message = settings_error(**env)
    assert expected in message
    assert "\n" not in message


def test_sign_in_providers_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GQL_CHAT_OIDC_PROVIDERS", '{"acme": ' + PROVIDER + "}")
    [(name, provider)] = Settings().oidc_providers.items()
    assert (name, provider.issuer, provider.client_id, provider.scopes) == (
        "acme",
        "http://sso.test",
        "id",
        "openid email",
    )
    assert provider.client_secret.get_secret_value() == "never-shown"
    assert "never-shown" not in repr(Settings())


def test_secrets_never_appear_in_repr() -> None:
    settings = Settings(jwt_secret="x" * 40, openrouter_api_key="sk-or-secret")
    assert "sk-or-secret" not in repr(settings)
    assert "x" * 40 not in repr(settings)
