"""A real OpenID Connect provider on 127.0.0.1 for the tests, with knobs to misbehave.

It serves discovery, `/authorize` (no login page: it approves at once as `user`, or denies),
`/token` (client_secret_basic or _post; PKCE S256 checked; each code once), the JWKS and
`/userinfo`, and signs RS256 ID tokens. `forge` makes the next ID tokens wrong in one way
(expired, signed by another key under the same key id, another nonce, audience or issuer),
for the relying party to refuse."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

KEY_ID = "signing-key"
_KEYS: dict[str, RSAKey] = {}


def _key(name: str) -> RSAKey:
    """RSA keys are slow to make: one per name for the whole run."""
    if name not in _KEYS:
        _KEYS[name] = RSAKey.generate_key(2048, parameters={"kid": KEY_ID}, private=True)
    return _KEYS[name]


class Forgery(StrEnum):
    EXPIRED = "expired"
    FOREIGN_KEY = "foreign_key"
    WRONG_NONCE = "wrong_nonce"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    NO_ID_TOKEN = "no_id_token"


@dataclass
class ProviderUser:
    sub: str
    email: str | None
    email_verified: bool | str = True
    name: str | None = "Provider User"


@dataclass
class _Grant:
    user: ProviderUser
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str


@dataclass
class FakeOidcProvider(LocalServer):
    client_id: str = "gql-chat-client"
    client_secret: str = "provider-secret-never-logged"
    user: ProviderUser = field(
        default_factory=lambda: ProviderUser(sub="subject-1", email="sso@example.com")
    )
    forge: Forgery | None = None
    deny: bool = False
    email_in_id_token: bool = True
    token_requests: int = 0

    def __post_init__(self) -> None:
        self._grants: dict[str, _Grant] = {}
        self._access_tokens: dict[str, ProviderUser] = {}
        LocalServer.__init__(
            self,
            Starlette(
                routes=[
                    Route("/.well-known/openid-configuration", self._discovery),
                    Route("/authorize", self._authorize),
                    Route("/token", self._token, methods=["POST"]),
                    Route("/jwks", self._jwks),
                    Route("/userinfo", self._userinfo),
                ]
            ),
        )

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """This provider as one entry of `GQL_CHAT_OIDC_PROVIDERS`."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            **overrides,
        }

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _authorize(self, request: Request) -> Response:
        query = request.query_params
        redirect_uri = query["redirect_uri"]
        assert query["client_id"] == self.client_id
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        back = {"state": query["state"]}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self._grants[code] = _Grant(
                self.user, self.client_id, redirect_uri, query.get("nonce"), query["code_challenge"]
            )
            back["code"] = code
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        client_id, client_secret = _client_credentials(request, form)
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self._grants.pop(str(form.get("code")), None)  # each code once
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        access_token = secrets.token_urlsafe(16)
        self._access_tokens[access_token] = grant.user
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
        }
        if self.forge is not Forgery.NO_ID_TOKEN:
            body["id_token"] = self._id_token(grant)
        return JSONResponse(body)

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.user.sub,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
        }
        if self.email_in_id_token:
            claims.update(_profile(grant.user))
        key = _key(self.issuer)
        match self.forge:
            case Forgery.EXPIRED:
                claims.update(iat=now - 3600, exp=now - 600)
            case Forgery.FOREIGN_KEY:
                key = _key("someone else")
            case Forgery.WRONG_NONCE:
                claims["nonce"] = "a-nonce-of-another-flow"
            case Forgery.WRONG_AUDIENCE:  # another client's token, naming us its presenter
                claims.update(aud=["another-client"], azp=grant.client_id)
            case Forgery.WRONG_ISSUER:
                claims["iss"] = "http://127.0.0.1:1"
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [_key(self.issuer).as_dict(private=False)]})

    async def _userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = self._access_tokens.get(token)
        if user is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": user.sub, **_profile(user)})


def _profile(user: ProviderUser) -> dict[str, Any]:
    claims: dict[str, Any] = {"email_verified": user.email_verified}
    if user.email is not None:
        claims["email"] = user.email
    if user.name is not None:
        claims["name"] = user.name
    return claims


def _client_credentials(request: Request, form: Any) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id, secret
    return str(form.get("client_id", "")), str(form.get("client_secret", ""))
