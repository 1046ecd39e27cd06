"""The `messages` collection: a tree per conversation through `parent_id`."""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.store.indexes import ensure_indexes


class MessageStore:
    INDEXES = [
        IndexModel(
            [("owner_id", ASCENDING), ("conversation_id", ASCENDING), ("_id", ASCENDING)],
            name="owner_conversation",
        ),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._messages = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._messages, self.INDEXES)

    async def conversations_matching(self, owner_id: ObjectId, text: str) -> list[ObjectId]:
        """Conversations with a message containing `text` (literally, case-insensitively)."""
        ids = await self._messages.distinct(
            "conversation_id",
            {"owner_id": owner_id, "content": {"$regex": re.escape(text), "$options": "i"}},
        )
        return list(ids)

    async def delete_for_conversations(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> None:
        await self._messages.delete_many(
            {"owner_id": owner_id, "conversation_id": {"$in": conversation_ids}}
        )

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._messages.delete_many({"owner_id": owner_id})
