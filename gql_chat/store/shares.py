"""The `shares` collection (one document per link, keyed by its token's hash) and
`share_messages` (each share's copied messages, by position)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from gql_chat.domain.clock import as_utc
from gql_chat.domain.messages import MessageRole, SharedMessageRecord
from gql_chat.domain.shares import ShareRecord
from gql_chat.store.indexes import ensure_indexes


def share_from_document(doc: dict[str, Any]) -> ShareRecord:
    return ShareRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        conversation_id=doc["conversation_id"],
        up_to_message_id=doc["up_to_message_id"],
        title=doc["title"],
        message_count=int(doc["message_count"]),
        attachment_ids=frozenset(doc.get("attachment_ids") or ()),
        created_at=as_utc(doc["created_at"]),
    )


def shared_message_from_document(doc: dict[str, Any]) -> SharedMessageRecord:
    return SharedMessageRecord(
        position=int(doc["position"]),
        role=MessageRole(doc["role"]),
        content=doc.get("content") or "",
        model=doc.get("model"),
        created_at=as_utc(doc["created_at"]),
        attachment_ids=tuple(doc.get("attachment_ids") or ()),
    )


class ShareStore:
    INDEXES = [
        IndexModel([("token_hash", ASCENDING)], unique=True, name="token_hash_unique"),
        IndexModel([("owner_id", ASCENDING), ("_id", DESCENDING)], name="owner_newest"),
        IndexModel([("owner_id", ASCENDING), ("conversation_id", ASCENDING)], name="owner_conv"),
    ]
    MESSAGE_INDEXES = [IndexModel([("share_id", ASCENDING), ("position", ASCENDING)], name="share")]

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._shares = db["shares"]
        self._messages = db["share_messages"]

    async def create_indexes(self) -> None:
        await ensure_indexes(self._shares, self.INDEXES)
        await ensure_indexes(self._messages, self.MESSAGE_INDEXES)

    async def add(
        self, share: ShareRecord, token_hash: str, messages: Sequence[SharedMessageRecord]
    ) -> None:
        """The messages first: a share that can be found is whole (a failure halfway leaves
        messages no share points to, which `delete_ids` removes)."""
        if messages:
            await self._messages.insert_many(
                [
                    {
                        "share_id": share.id,
                        "position": m.position,
                        "role": m.role.value,
                        "content": m.content,
                        "model": m.model,
                        "created_at": m.created_at,
                        **({"attachment_ids": list(m.attachment_ids)} if m.attachment_ids else {}),
                    }
                    for m in messages
                ]
            )
        await self._shares.insert_one(
            {
                "_id": share.id,
                "owner_id": share.owner_id,
                "conversation_id": share.conversation_id,
                "up_to_message_id": share.up_to_message_id,
                "token_hash": token_hash,
                "title": share.title,
                "message_count": share.message_count,
                "attachment_ids": sorted(share.attachment_ids),
                "created_at": share.created_at,
            }
        )

    async def by_token_hash(self, token_hash: str) -> ShareRecord | None:
        doc = await self._shares.find_one({"token_hash": token_hash}, {"token_hash": 0})
        return share_from_document(doc) if doc else None

    async def get(self, owner_id: ObjectId, share_id: ObjectId) -> ShareRecord | None:
        doc = await self._shares.find_one({"_id": share_id, "owner_id": owner_id})
        return share_from_document(doc) if doc else None

    async def find(self, share_id: ObjectId) -> ShareRecord | None:
        doc = await self._shares.find_one({"_id": share_id})
        return share_from_document(doc) if doc else None

    async def page(
        self, owner_id: ObjectId, limit: int, older_than: ObjectId | None
    ) -> list[ShareRecord]:
        """The owner's shares, newest first."""
        query: dict[str, Any] = {"owner_id": owner_id}
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        cursor = self._shares.find(query).sort("_id", DESCENDING).limit(limit)
        return [share_from_document(doc) async for doc in cursor]

    async def count(self, owner_id: ObjectId) -> int:
        return await self._shares.count_documents({"owner_id": owner_id})

    async def messages(
        self, share_id: ObjectId, after_position: int, limit: int
    ) -> list[SharedMessageRecord]:
        cursor = (
            self._messages.find({"share_id": share_id, "position": {"$gt": after_position}})
            .sort("position", ASCENDING)
            .limit(limit)
        )
        return [shared_message_from_document(doc) async for doc in cursor]

    async def older_for_conversation(
        self, owner_id: ObjectId, conversation_id: ObjectId, newer: ObjectId
    ) -> list[ObjectId]:
        """The conversation's shares made before `newer` (which replaces them)."""
        cursor = self._shares.find(
            {"owner_id": owner_id, "conversation_id": conversation_id, "_id": {"$lt": newer}},
            {"_id": 1},
        )
        return [doc["_id"] async for doc in cursor]

    async def delete_ids(self, owner_id: ObjectId, share_ids: Collection[ObjectId]) -> int:
        """The shares (their links stop working at once), then their messages."""
        if not share_ids:
            return 0
        ids = list(share_ids)
        result = await self._shares.delete_many({"_id": {"$in": ids}, "owner_id": owner_id})
        await self._messages.delete_many({"share_id": {"$in": ids}})
        return result.deleted_count

    async def delete_for_conversations(
        self, owner_id: ObjectId, conversation_ids: Collection[ObjectId]
    ) -> None:
        cursor = self._shares.find(
            {"owner_id": owner_id, "conversation_id": {"$in": list(conversation_ids)}},
            {"_id": 1},
        )
        await self.delete_ids(owner_id, [doc["_id"] async for doc in cursor])

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        cursor = self._shares.find({"owner_id": owner_id}, {"_id": 1})
        await self.delete_ids(owner_id, [doc["_id"] async for doc in cursor])
