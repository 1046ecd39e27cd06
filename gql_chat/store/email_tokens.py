"""The `email_tokens` collection: one-use tokens, kept by their SHA-256 only, until used or
expired (TTL): those of links sent by mail (verifying an address, resetting a password), and
those a provider sign-in hands the frontend (`services/single_sign_on.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.store.indexes import ensure_indexes


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"
    """Confirms a new address (the token's `email`), which then replaces the user's."""
    RESET_PASSWORD = "reset_password"
    SIGN_IN = "sign_in"
    """The one-time code a provider sign-in ends with, exchanged for tokens by the frontend."""
    LINK_IDENTITY = "link_identity"
    """Lets the browser of a signed-in user start linking a provider to their account."""
    LINK_CODE = "link_code"
    """The one-time code a link's provider sign-in ends with, redeemed by the signed-in user."""


@dataclass(frozen=True, slots=True)
class EmailToken:
    user_id: ObjectId
    email: str
    """The address it was sent to (a verification verifies that one only)."""
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    """What the purpose needs besides (a provider sign-in's frontend challenge, say)."""


class EmailTokenStore:
    INDEXES = [
        IndexModel([("user_id", ASCENDING), ("purpose", ASCENDING)], name="user_purpose"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._tokens = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._tokens, self.INDEXES)

    async def add(
        self,
        token_hash: str,
        purpose: TokenPurpose,
        user_id: ObjectId,
        email: str,
        expires_at: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        await self._tokens.insert_one(
            {
                "_id": token_hash,
                "purpose": purpose.value,
                "user_id": user_id,
                "email": email,
                "created_at": utc_now(),
                "expires_at": expires_at,
                "data": data or {},
            }
        )

    async def use(self, token_hash: str, purpose: TokenPurpose) -> EmailToken | None:
        """The token's subject, once: it is deleted as it is read (a second use finds
        nothing); None when unknown, used, expired or of another purpose."""
        doc = await self._tokens.find_one_and_delete(
            {"_id": token_hash, "purpose": purpose.value, "expires_at": {"$gt": utc_now()}}
        )
        if doc is None:
            return None
        return EmailToken(
            doc["user_id"], doc["email"], as_utc(doc["created_at"]), doc.get("data") or {}
        )

    async def delete_for_user(self, user_id: ObjectId, *purposes: TokenPurpose) -> None:
        """The user's tokens of these purposes (of every purpose when none is given)."""
        query: dict[str, Any] = {"user_id": user_id}
        if purposes:
            query["purpose"] = {"$in": [purpose.value for purpose in purposes]}
        await self._tokens.delete_many(query)
