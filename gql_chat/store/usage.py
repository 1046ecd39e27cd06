"""Usage of assistant replies, summed by the database over the `messages` collection and over
`deleted_replies` (what `deleteMessage` keeps of the replies it deletes: billing history is not
rewritten): totals per conversation (one aggregation for a page of conversations) and the usage
report. Each sum runs on both collections; the rows are merged by key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.messages import MessageRole, UsageGroup, UsageRecord, UsageRow
from gql_chat.store.indexes import ensure_indexes


def usage_to_document(usage: UsageRecord) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": usage.cost,
        **(
            {"reasoning_tokens": usage.reasoning_tokens}
            if usage.reasoning_tokens is not None
            else {}
        ),
        **({"cost_estimated": True} if usage.cost_estimated else {}),
    }


def usage_from_document(doc: dict[str, Any] | None) -> UsageRecord | None:
    if not doc:
        return None
    cost = doc.get("cost")
    reasoning = doc.get("reasoning_tokens")
    return UsageRecord(
        prompt_tokens=int(doc.get("prompt_tokens") or 0),
        completion_tokens=int(doc.get("completion_tokens") or 0),
        cost=float(cost) if cost is not None else None,
        reasoning_tokens=int(reasoning) if reasoning is not None else None,
        cost_estimated=bool(doc.get("cost_estimated")),
    )


USAGE_FIELDS = {"$project": {"usage": 1, "model": 1, "created_at": 1, "conversation_id": 1}}
"""What the sums read: the embedded store then copies no reply's text (see
`gql_chat/platform/mongomock_indexes.py`); MongoDB works this out by itself."""

GROUP_KEYS: dict[UsageGroup, Any] = {
    UsageGroup.MODEL: {"$ifNull": ["$model", "unknown"]},
    UsageGroup.DAY: {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}},
    UsageGroup.CONVERSATION: "$conversation_id",
}


ARCHIVED_FIELDS = ("owner_id", "conversation_id", "role", "model", "created_at", "usage")
"""What `deleted_replies` keeps of a deleted reply: what the sums read, nothing of its text."""


class UsageStore:
    def __init__(
        self,
        messages: AsyncCollection[dict[str, Any]],
        archived: AsyncCollection[dict[str, Any]],
    ) -> None:
        self._messages = messages
        self._archived = archived

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self._archived,
            [
                IndexModel(
                    [("owner_id", ASCENDING), ("conversation_id", ASCENDING)],
                    name="owner_conversation",
                )
            ],
        )

    async def archive(self, docs: list[dict[str, Any]]) -> None:
        """Keep the usage of replies about to be deleted; idempotent (keyed by message id), so
        a delete that is retried counts each reply once."""
        for doc in docs:
            if doc.get("role") == MessageRole.ASSISTANT.value and doc.get("usage"):
                kept = {field: doc.get(field) for field in ARCHIVED_FIELDS}
                await self._archived.replace_one({"_id": doc["_id"]}, kept, upsert=True)

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._archived.delete_many({"owner_id": owner_id})

    async def delete_for_conversations(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> None:
        await self._archived.delete_many(
            {"owner_id": owner_id, "conversation_id": {"$in": conversation_ids}}
        )

    async def _aggregate_both(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`pipeline` (ending in a `$group`) over both collections, rows merged by `_id`."""
        merged: dict[Any, dict[str, Any]] = {}
        for collection in (self._messages, self._archived):
            async for row in await collection.aggregate(pipeline):
                into = merged.setdefault(row["_id"], {"_id": row["_id"]})
                for name, value in row.items():
                    if name != "_id":
                        into[name] = (into.get(name) or 0) + (value or 0)
        return list(merged.values())

    async def totals(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> dict[ObjectId, UsageRecord]:
        """Summed in the database: one aggregation (per collection) for many conversations."""
        rows = await self._aggregate_both(
            [
                {
                    "$match": {
                        "owner_id": owner_id,
                        "conversation_id": {"$in": conversation_ids},
                        "role": MessageRole.ASSISTANT.value,
                    }
                },
                USAGE_FIELDS,
                {
                    "$group": {
                        "_id": "$conversation_id",
                        "prompt_tokens": {"$sum": "$usage.prompt_tokens"},
                        "completion_tokens": {"$sum": "$usage.completion_tokens"},
                        "cost": {"$sum": "$usage.cost"},
                        "priced": {"$sum": {"$cond": [{"$gt": ["$usage.cost", None]}, 1, 0]}},
                    }
                },
            ]
        )
        totals = {}
        for row in rows:
            totals[row["_id"]] = UsageRecord(
                prompt_tokens=int(row.get("prompt_tokens") or 0),
                completion_tokens=int(row.get("completion_tokens") or 0),
                cost=float(row.get("cost") or 0.0) if row.get("priced") else None,
            )
        return totals

    async def summary(
        self,
        owner_id: ObjectId,
        group_by: UsageGroup,
        start: datetime | None,
        end: datetime | None,
    ) -> list[UsageRow]:
        """Assistant replies with usage, grouped and summed by the database (days in UTC)."""
        match: dict[str, Any] = {
            "owner_id": owner_id,
            "role": MessageRole.ASSISTANT.value,
            "usage": {"$ne": None},
        }
        created: dict[str, datetime] = {}
        if start is not None:
            created["$gte"] = start
        if end is not None:
            created["$lt"] = end
        if created:
            match["created_at"] = created
        rows = await self._aggregate_both(
            [
                {"$match": match},
                USAGE_FIELDS,
                {
                    "$group": {
                        "_id": GROUP_KEYS[group_by],
                        "messages": {"$sum": 1},
                        "prompt_tokens": {"$sum": "$usage.prompt_tokens"},
                        "completion_tokens": {"$sum": "$usage.completion_tokens"},
                        "cost": {"$sum": {"$ifNull": ["$usage.cost", 0]}},
                    }
                },
            ]
        )
        return [
            UsageRow(
                key=str(row["_id"]),
                messages=int(row["messages"]),
                prompt_tokens=int(row.get("prompt_tokens") or 0),
                completion_tokens=int(row.get("completion_tokens") or 0),
                cost=float(row.get("cost") or 0.0),
            )
            for row in sorted(rows, key=lambda row: str(row["_id"]))
        ]
