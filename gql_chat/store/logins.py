"""The `logins` collection: one document per sign-in (keyed by its refresh-token family), kept
until its last refresh token expires (a TTL index), or the sign-in is revoked."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.logins import Device, LoginRecord
from gql_chat.store.indexes import ensure_indexes


def login_from_document(doc: dict[str, Any]) -> LoginRecord:
    return LoginRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        created_at=as_utc(doc["created_at"]),
        last_used_at=as_utc(doc["last_used_at"]),
        device=Device(client_ip=doc.get("client_ip") or "", user_agent=doc.get("user_agent")),
    )


class LoginStore:
    INDEXES = [
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._logins = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._logins, self.INDEXES)

    async def add(
        self, family_id: str, user_id: ObjectId, device: Device, expires_at: datetime
    ) -> None:
        now = utc_now()
        await self._logins.insert_one(
            {
                "_id": family_id,
                "user_id": user_id,
                "created_at": now,
                "last_used_at": now,
                "client_ip": device.client_ip,
                "user_agent": device.user_agent,
                "expires_at": expires_at,
            }
        )

    async def used(self, family_id: str, expires_at: datetime) -> None:
        """A refresh: the one write a sign-in's use costs (requests with its access token
        write nothing)."""
        await self._logins.update_one(
            {"_id": family_id},
            {"$set": {"last_used_at": utc_now(), "expires_at": expires_at}},
        )

    async def of_user(self, user_id: ObjectId, live: Collection[str]) -> list[LoginRecord]:
        """The user's logins among the `live` families, the most recently used first."""
        cursor = self._logins.find({"user_id": user_id, "_id": {"$in": list(live)}}).sort(
            "last_used_at", DESCENDING
        )
        return [login_from_document(doc) async for doc in cursor]

    async def signed_in_at(self, user_id: ObjectId, family_id: str) -> datetime | None:
        doc = await self._logins.find_one({"_id": family_id, "user_id": user_id})
        return as_utc(doc["created_at"]) if doc else None

    async def delete(self, user_id: ObjectId, family_id: str) -> None:
        await self._logins.delete_one({"_id": family_id, "user_id": user_id})

    async def delete_for_user(self, user_id: ObjectId) -> None:
        await self._logins.delete_many({"user_id": user_id})
