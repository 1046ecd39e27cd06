"""The `identities` collection: provider accounts linked to users, one per (issuer, subject)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.identities import IdentityRecord, ProviderAccount
from gql_chat.errors import Conflict
from gql_chat.store.indexes import ensure_indexes

IDENTITY_IN_USE = "This provider account is already linked to a user."


def identity_from_document(doc: dict[str, Any]) -> IdentityRecord:
    return IdentityRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        provider=doc["provider"],
        issuer=doc["issuer"],
        subject=doc["subject"],
        email=doc.get("email"),
        proven=bool(doc.get("proven")),
        created_at=as_utc(doc["created_at"]),
        last_used_at=as_utc(doc["last_used_at"]),
    )


def identity_to_document(identity: IdentityRecord) -> dict[str, Any]:
    return {
        "_id": identity.id,
        "user_id": identity.user_id,
        "provider": identity.provider,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "email": identity.email,
        "proven": identity.proven,
        "created_at": identity.created_at,
        "last_used_at": identity.last_used_at,
    }


class IdentityStore:
    INDEXES = [
        IndexModel([("issuer", ASCENDING), ("subject", ASCENDING)], unique=True, name="account"),
        IndexModel([("user_id", ASCENDING)], name="user"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._identities = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._identities, self.INDEXES)

    async def add(
        self, user_id: ObjectId, provider: str, account: ProviderAccount, *, proven: bool
    ) -> IdentityRecord:
        """Raises `Conflict` when the provider account is linked already (to anyone)."""
        now = utc_now()
        identity = IdentityRecord(
            id=ObjectId(),
            user_id=user_id,
            provider=provider,
            issuer=account.issuer,
            subject=account.subject,
            email=account.email,
            proven=proven,
            created_at=now,
            last_used_at=now,
        )
        try:
            await self._identities.insert_one(identity_to_document(identity))
        except DuplicateKeyError as exc:
            raise Conflict(IDENTITY_IN_USE) from exc
        return identity

    async def signed_in(self, account: ProviderAccount) -> IdentityRecord | None:
        """The identity of a provider account that just signed in (its last use and address
        brought up to date); None when it is linked to no one."""
        doc = await self._identities.find_one_and_update(
            {"issuer": account.issuer, "subject": account.subject},
            {"$set": {"last_used_at": utc_now(), "email": account.email}},
            return_document=True,
        )
        return identity_from_document(doc) if doc else None

    async def of_user(self, user_id: ObjectId) -> list[IdentityRecord]:
        cursor = self._identities.find({"user_id": user_id}).sort("_id", ASCENDING)
        return [identity_from_document(doc) async for doc in cursor]

    async def count(self, user_id: ObjectId) -> int:
        return await self._identities.count_documents({"user_id": user_id})

    async def delete(self, user_id: ObjectId, identity_id: ObjectId) -> bool:
        result = await self._identities.delete_one({"_id": identity_id, "user_id": user_id})
        return result.deleted_count == 1

    async def restore(self, identity: IdentityRecord) -> None:
        """Put back an identity just deleted (an unlink that left no way to sign in)."""
        await self._identities.insert_one(identity_to_document(identity))

    async def delete_unproven(self, user_id: ObjectId) -> None:
        """Identities linked on an address their provider did not vouch for: once the mailbox
        is proven someone else's (a password reset), they may be an attacker's."""
        await self._identities.delete_many({"user_id": user_id, "proven": {"$ne": True}})

    async def delete_for_user(self, user_id: ObjectId) -> None:
        await self._identities.delete_many({"user_id": user_id})
