"""JWT access and refresh tokens (HS256 pinned on decode)."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.errors import Unauthenticated

ALGORITHM = "HS256"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
"""`extensions.reason` of an expired token: refresh it (rather than sign out)."""
TOKEN_INVALID = "TOKEN_INVALID"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "typ"]
DECODED_CACHE_SIZE = 4096
"""Verified tokens remembered (about 0.5 KB each): a signed-in client sends the same access
token with every request and websocket operation until it refreshes it."""


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: ObjectId
    jti: str
    family_id: str | None
    expires_at: datetime
    issued_at: datetime | None = None


def token_digest(token: str) -> str:
    """What the server keeps of a refresh token: a database leak yields nothing usable."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, settings: Settings, secret: str) -> None:
        self._settings = settings
        self._secret = secret
        self._verified: OrderedDict[tuple[str, TokenType], TokenClaims] = OrderedDict()

    def issue(
        self, user_id: ObjectId, kind: TokenType, family_id: str | None = None
    ) -> IssuedToken:
        now = utc_now()
        ttl = (
            self._settings.access_token_ttl
            if kind is TokenType.ACCESS
            else self._settings.refresh_token_ttl
        )
        expires_at = now + ttl
        jti = secrets.token_urlsafe(24)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            # Milliseconds (RFC 7519 allows a fraction): a password reset refuses tokens
            # issued before it, and the fresh one it hands out in the same second stands.
            "iat": round(now.timestamp(), 3),
            "exp": int(expires_at.timestamp()),
            "jti": jti,
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "typ": kind.value,
        }
        if family_id is not None:
            claims["fam"] = family_id
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(token=token, jti=jti, expires_at=expires_at.replace(microsecond=0))

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        """Any failure (signature, algorithm, expiry, audience, issuer, type): UNAUTHENTICATED.

        PyJWT's checks cost about 150 µs per token (it tests every character of the token in
        Python, and asks `cryptography` whether the secret is a public key); a token that
        passed them once is remembered and only its expiry is checked again. Only tokens that
        passed are kept, so a flood of forged ones fills nothing; revocation is not a property
        of the token and is checked by the caller every time."""
        key = (token, expected)
        known = self._verified.get(key)
        if known is not None:
            if known.expires_at <= datetime.now(tz=UTC):  # as PyJWT: `exp <= now` is expired
                del self._verified[key]
                raise Unauthenticated("The token has expired.", reason=TOKEN_EXPIRED)
            self._verified.move_to_end(key)
            return known
        claims = self._verify(token, expected)
        self._verified[key] = claims
        if len(self._verified) > DECODED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str, expected: TokenType) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            # PyJWT checks the signature first: this token was ours, and is only too old.
            raise Unauthenticated("The token has expired.", reason=TOKEN_EXPIRED) from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Invalid or expired token.", reason=TOKEN_INVALID) from exc
        user_id = ObjectId(claims["sub"]) if ObjectId.is_valid(claims["sub"]) else None
        if claims.get("typ") != expected.value or user_id is None:
            raise Unauthenticated("Invalid or expired token.", reason=TOKEN_INVALID)
        family = claims.get("fam")
        return TokenClaims(
            user_id=user_id,
            jti=str(claims["jti"]),
            family_id=str(family) if family else None,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        )
