"""The `refresh_tokens` collection: one record per issued refresh token, holding its hash only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.refresh_tokens import RefreshTokenRecord
from gql_chat.store.indexes import ensure_indexes


def refresh_token_from_document(doc: dict[str, Any]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        jti=doc["_id"],
        user_id=doc["user_id"],
        family_id=doc["family_id"],
        token_hash=doc["token_hash"],
        expires_at=as_utc(doc["expires_at"]),
        used_at=as_utc(doc["used_at"]) if doc.get("used_at") else None,
        revoked_at=as_utc(doc["revoked_at"]) if doc.get("revoked_at") else None,
    )


class RefreshTokenStore:
    """Records outlive their use (to detect reuse) until the TTL monitor drops them at expiry."""

    INDEXES = [
        IndexModel([("family_id", ASCENDING)], name="family"),
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._tokens = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._tokens, self.INDEXES)

    async def insert(
        self, *, jti: str, user_id: ObjectId, family_id: str, token_hash: str, expires_at: datetime
    ) -> None:
        await self._tokens.insert_one(
            {
                "_id": jti,
                "user_id": user_id,
                "family_id": family_id,
                "token_hash": token_hash,
                "created_at": utc_now(),
                "expires_at": expires_at,
                "used_at": None,
                "revoked_at": None,
            }
        )

    async def get(self, jti: str) -> RefreshTokenRecord | None:
        doc = await self._tokens.find_one({"_id": jti})
        return refresh_token_from_document(doc) if doc else None

    async def mark_used(self, jti: str, token_hash: str) -> bool:
        """Retire a live token atomically; False when it was already used or revoked (a reuse)."""
        result = await self._tokens.update_one(
            {"_id": jti, "token_hash": token_hash, "used_at": None, "revoked_at": None},
            {"$set": {"used_at": utc_now()}},
        )
        return result.modified_count == 1

    async def family_live(self, user_id: ObjectId, family_id: str) -> bool:
        """Whether the sign-in still has a token that was not revoked (a used one counts: it
        was rotated, not revoked)."""
        doc = await self._tokens.find_one(
            {"user_id": user_id, "family_id": family_id, "revoked_at": None}, {"_id": 1}
        )
        return doc is not None

    async def live_families(self, user_id: ObjectId) -> set[str]:
        """The user's sign-ins that can still refresh: each has one token neither used, nor
        revoked, nor expired."""
        cursor = self._tokens.find(
            {
                "user_id": user_id,
                "used_at": None,
                "revoked_at": None,
                "expires_at": {"$gt": utc_now()},
            },
            {"family_id": 1},
        )
        return {doc["family_id"] async for doc in cursor}

    async def revoke_family(self, user_id: ObjectId, family_id: str) -> int:
        """How many tokens were revoked (0: the sign-in had ended before)."""
        result = await self._tokens.update_many(
            {"user_id": user_id, "family_id": family_id, "revoked_at": None},
            {"$set": {"revoked_at": utc_now()}},
        )
        return result.modified_count

    async def revoke_all(self, user_id: ObjectId, *, except_family: str | None = None) -> int:
        """How many tokens were revoked."""
        query: dict[str, Any] = {"user_id": user_id, "revoked_at": None}
        if except_family is not None:
            query["family_id"] = {"$ne": except_family}
        result = await self._tokens.update_many(query, {"$set": {"revoked_at": utc_now()}})
        return result.modified_count

    async def delete_for_user(self, user_id: ObjectId) -> None:
        await self._tokens.delete_many({"user_id": user_id})
