"""The `llm_configs` collection: model presets, at most one `is_default` per owner."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.presets import LlmConfigRecord, ReasoningEffort
from gql_chat.errors import Conflict
from gql_chat.store.indexes import ensure_indexes

SET_DEFAULT_ATTEMPTS = 8


def llm_config_from_document(doc: dict[str, Any]) -> LlmConfigRecord:
    return LlmConfigRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        name=doc["name"],
        model=doc["model"],
        system_prompt=doc.get("system_prompt"),
        temperature=doc.get("temperature"),
        top_p=doc.get("top_p"),
        max_tokens=doc.get("max_tokens"),
        is_default=bool(doc.get("is_default", False)),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
        reasoning_effort=_effort(doc.get("reasoning_effort")),
    )


def _effort(value: Any) -> ReasoningEffort | None:
    """The stored effort; None for none, or for a value this version does not know."""
    try:
        return ReasoningEffort(value) if value is not None else None
    except ValueError:
        return None


class LlmConfigStore:
    INDEXES = [
        IndexModel([("owner_id", ASCENDING), ("created_at", ASCENDING)], name="owner_created"),
        # The database, not Python, guarantees a single default per user, even under races.
        IndexModel(
            [("owner_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"is_default": True},
            name="one_default_per_owner",
        ),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._configs = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._configs, self.INDEXES)

    async def insert(self, owner_id: ObjectId, fields: dict[str, Any]) -> LlmConfigRecord:
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            **fields,
            "is_default": False,
            "created_at": now,
            "updated_at": now,
        }
        await self._configs.insert_one(doc)
        return llm_config_from_document(doc)

    async def get(self, owner_id: ObjectId, config_id: ObjectId) -> LlmConfigRecord | None:
        doc = await self._configs.find_one({"_id": config_id, "owner_id": owner_id})
        return llm_config_from_document(doc) if doc else None

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[LlmConfigRecord]:
        cursor = self._configs.find({"_id": {"$in": ids}, "owner_id": owner_id})
        return [llm_config_from_document(doc) async for doc in cursor]

    async def count(self, owner_id: ObjectId) -> int:
        return await self._configs.count_documents({"owner_id": owner_id})

    async def list_all(self, owner_id: ObjectId) -> list[LlmConfigRecord]:
        cursor = self._configs.find({"owner_id": owner_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [llm_config_from_document(doc) async for doc in cursor]

    async def get_defaults(self, owner_ids: list[ObjectId]) -> list[LlmConfigRecord]:
        cursor = self._configs.find({"owner_id": {"$in": owner_ids}, "is_default": True})
        return [llm_config_from_document(doc) async for doc in cursor]

    async def update(
        self, owner_id: ObjectId, config_id: ObjectId, fields: dict[str, Any]
    ) -> LlmConfigRecord | None:
        doc = await self._configs.find_one_and_update(
            {"_id": config_id, "owner_id": owner_id},
            {"$set": {**fields, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        return llm_config_from_document(doc) if doc else None

    async def make_default(self, owner_id: ObjectId, config_id: ObjectId) -> bool:
        """Clear the owner's other default, then claim it; a racing claim (from another
        instance) that wins the unique index makes this one wait a random moment, clear and
        retry; `Conflict` after `SET_DEFAULT_ATTEMPTS`. False when the preset does not exist."""
        for attempt in range(SET_DEFAULT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.01 * attempt * random.random())  # noqa: S311 - jitter
            await self._configs.update_many(
                {"owner_id": owner_id, "is_default": True, "_id": {"$ne": config_id}},
                {"$set": {"is_default": False, "updated_at": utc_now()}},
            )
            try:
                result = await self._configs.update_one(
                    {"_id": config_id, "owner_id": owner_id},
                    {"$set": {"is_default": True, "updated_at": utc_now()}},
                )
            except DuplicateKeyError:
                continue
            return result.matched_count == 1
        raise Conflict("Your default preset is being changed elsewhere; try again.")

    async def clear_default(self, owner_id: ObjectId, config_id: ObjectId | None = None) -> None:
        query: dict[str, Any] = {"owner_id": owner_id, "is_default": True}
        if config_id is not None:
            query["_id"] = config_id
        await self._configs.update_many(
            query, {"$set": {"is_default": False, "updated_at": utc_now()}}
        )

    async def delete(self, owner_id: ObjectId, config_id: ObjectId) -> bool:
        result = await self._configs.delete_one({"_id": config_id, "owner_id": owner_id})
        return result.deleted_count == 1

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._configs.delete_many({"owner_id": owner_id})
