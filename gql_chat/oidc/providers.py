"""The configured OpenID Connect providers, through authlib's Starlette client: discovery
(`<issuer>/.well-known/openid-configuration`, loaded once), the authorization URL with
`state`, `nonce` and a PKCE (S256) challenge, the code exchange, and the ID token's
validation: its signature against the provider's JWKS (fetched again for an unknown key id),
its issuer, audience (this client), expiry and nonce.

Every outbound request is bounded by `REQUEST_TIMEOUT`; every failure is a `SignInFailed`."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError

from gql_chat.config import OidcProvider
from gql_chat.domain.identities import ProviderAccount
from gql_chat.oidc.errors import SignInFailed, SignInFailure

with warnings.catch_warnings():
    # authlib warns at import that it would rather have `httpx2`; httpx is this app's client.
    # Its `deprecate` module turns its warnings on when imported: ignored after that.
    import authlib.deprecate

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
    from authlib.oidc.core import UserInfo

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"""Seconds for each request to a provider (discovery, keys, token, userinfo)."""
CLOCK_LEEWAY = 60
"""Seconds an ID token's times may be off by (the provider's clock is not ours)."""
CALLBACK_TIMEOUT = 30.0
"""Seconds for all of a callback's requests to the provider together."""
METADATA_TTL = 3600.0
"""Seconds discovery and the keys are kept before they are fetched again (a provider's
removed key stops verifying within this)."""
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What an ID token may be signed with, whatever the provider lists (never `none`, never a
shared-secret HMAC)."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """Where to send the browser, and what the callback must match."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class Providers:
    def __init__(self, providers: Mapping[str, OidcProvider]) -> None:
        self._settings = dict(providers)
        self._oauth = OAuth()
        for name, provider in providers.items():
            self._oauth.register(
                name,
                client_id=provider.client_id,
                client_secret=provider.client_secret.get_secret_value(),
                server_metadata_url=(
                    provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
                ),
                client_kwargs={
                    "scope": provider.scopes,
                    "code_challenge_method": "S256",
                    "timeout": REQUEST_TIMEOUT,
                },
            )

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def configured(self) -> Mapping[str, OidcProvider]:
        return self._settings

    async def authorization(self, name: str, redirect_uri: str) -> Authorization:
        client = self._client(name)
        try:
            await self._metadata(name, client)
            created = await client.create_authorization_url(redirect_uri)
        except SignInFailed:
            raise
        except Exception as exc:
            raise _unavailable(name, exc) from None
        return Authorization(
            url=created["url"],
            state=created["state"],
            nonce=created["nonce"],
            code_verifier=created["code_verifier"],
        )

    async def account(
        self, name: str, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderAccount:
        """Who signed in, from the ID token the code is exchanged for (and, for an address it
        leaves out, the userinfo endpoint)."""
        try:
            async with asyncio.timeout(CALLBACK_TIMEOUT):
                return await self._account(name, code, redirect_uri, code_verifier, nonce)
        except TimeoutError:
            raise SignInFailed(
                SignInFailure.PROVIDER_UNAVAILABLE, f"{name}: took too long"
            ) from None

    async def _account(
        self, name: str, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderAccount:
        client = self._client(name)
        settings = self._settings[name]
        try:
            metadata = await self._metadata(name, client)
            token: dict[str, Any] = await client.fetch_access_token(  # type: ignore[no-untyped-call]
                code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
            )
        except SignInFailed:
            raise
        except OAuthError as exc:  # the provider refused the code (used, expired, not ours)
            raise SignInFailed(SignInFailure.INVALID_REQUEST, f"{name}: {exc.error}") from None
        except Exception as exc:
            raise _unavailable(name, exc) from None
        if "id_token" not in token:
            raise SignInFailed(SignInFailure.INVALID_TOKEN, f"{name}: no ID token")
        try:
            claims = await client.parse_id_token(
                token,
                nonce=nonce,
                claims_options={
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": settings.client_id},
                },
                leeway=CLOCK_LEEWAY,
            )
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise SignInFailed(
                SignInFailure.INVALID_TOKEN, f"{name}: {type(exc).__name__}"
            ) from None
        except Exception as exc:  # fetching the keys
            raise _unavailable(name, exc) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInFailed(SignInFailure.INVALID_TOKEN, f"{name}: no subject")
        subject = str(claims["sub"])
        if "email" not in claims and metadata.get("userinfo_endpoint"):
            claims = await self._with_userinfo(name, client, token, subject)
        email = claims.get("email")
        name_claim = claims.get("name") or claims.get("preferred_username")
        return ProviderAccount(
            issuer=metadata["issuer"],
            subject=subject,
            email=email if isinstance(email, str) and email else None,
            email_verified=settings.trust_email_verified
            and claims.get("email_verified") in (True, "true"),
            name=name_claim if isinstance(name_claim, str) else None,
        )

    def _client(self, name: str) -> StarletteOAuth2App:
        client = self._oauth.create_client(name)  # type: ignore[no-untyped-call]
        assert isinstance(client, StarletteOAuth2App)  # names are checked by the caller
        return client

    async def _metadata(self, name: str, client: StarletteOAuth2App) -> dict[str, Any]:
        """The discovery document, whose `issuer` must be the configured one (OpenID
        Connect Discovery 1.0, section 4.3)."""
        loaded_at = client.server_metadata.get("_loaded_at")
        if loaded_at is not None and time.time() - loaded_at > METADATA_TTL:
            for key in ("_loaded_at", "jwks"):  # authlib's own cache keys: fetched again
                client.server_metadata.pop(key, None)
        metadata: dict[str, Any] = await client.load_server_metadata()
        listed = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        metadata["id_token_signing_alg_values_supported"] = [
            algorithm for algorithm in listed if algorithm in SIGNING_ALGORITHMS
        ] or ["RS256"]
        expected = self._settings[name].issuer.rstrip("/")
        if str(metadata.get("issuer", "")).rstrip("/") != expected:
            raise SignInFailed(
                SignInFailure.PROVIDER_UNAVAILABLE, f"{name}: discovery names another issuer"
            )
        return metadata

    async def _with_userinfo(
        self, name: str, client: StarletteOAuth2App, token: dict[str, Any], subject: str
    ) -> UserInfo:
        try:
            info = await client.userinfo(token=token)
        except Exception as exc:
            raise _unavailable(name, exc) from None
        if info.get("sub") != subject:  # OpenID Connect Core 1.0, section 5.3.2
            raise SignInFailed(SignInFailure.INVALID_TOKEN, f"{name}: userinfo of another subject")
        return info


def _unavailable(name: str, error: Exception) -> SignInFailed:
    detail = (
        f"{name}: HTTP {error.response.status_code}"
        if isinstance(error, httpx.HTTPStatusError)
        else f"{name}: {type(error).__name__}"
    )
    return SignInFailed(SignInFailure.PROVIDER_UNAVAILABLE, detail)
