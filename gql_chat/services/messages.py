"""Reads over a user's messages that a list of conversations batches: the shape of each tree
(for active paths and counts) and the usage summed per conversation, one query for many."""

from __future__ import annotations

from bson import ObjectId

from gql_chat.domain.messages import MessageNode, UsageRecord
from gql_chat.store.database import Database


class MessageService:
    def __init__(self, database: Database) -> None:
        self._messages = database.messages

    async def nodes(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> list[MessageNode]:
        """Every message of the conversations, oldest first, without text."""
        return await self._messages.nodes(owner_id, conversation_ids)

    async def usage_totals(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> dict[ObjectId, UsageRecord]:
        """Usage of each conversation's assistant replies; absent when it has none."""
        return await self._messages.usage_totals(owner_id, conversation_ids)
