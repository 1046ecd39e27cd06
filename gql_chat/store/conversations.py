"""The `conversations` collection, listed newest activity first with keyset pagination."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.conversations import ConversationFilter, ConversationRecord
from gql_chat.domain.pages import Page
from gql_chat.errors import BadUserInput
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.indexes import ensure_indexes

ACTIVITY_ORDER = [("activity_at", DESCENDING), ("_id", DESCENDING)]
OLDEST_FIRST = [("activity_at", ASCENDING), ("_id", ASCENDING)]


def _cursor_key(cursor: str, field: str) -> tuple[datetime, ObjectId]:
    key = decode_cursor(cursor, field)
    try:
        return as_utc(datetime.fromisoformat(key["a"])), ObjectId(key["i"])
    except (KeyError, TypeError, ValueError, OverflowError, InvalidId) as exc:
        # InvalidId is not a ValueError; a far offset overflows on conversion to UTC
        raise BadUserInput(field, "Invalid cursor.") from exc


def conversation_from_document(doc: dict[str, Any]) -> ConversationRecord:
    last = doc.get("last_message_at")
    return ConversationRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        title=doc["title"],
        title_source=doc.get("title_source", "default"),
        folder_id=doc.get("folder_id"),
        llm_config_id=doc.get("llm_config_id"),
        pinned=bool(doc.get("pinned", False)),
        archived=bool(doc.get("archived", False)),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
        last_message_at=as_utc(last) if last else None,
        active_leaf_id=doc.get("active_leaf_id"),
    )


class ConversationStore:
    INDEXES = [
        IndexModel(
            [("owner_id", ASCENDING), ("archived", ASCENDING), *ACTIVITY_ORDER],
            name="owner_archived_activity",
        ),
        IndexModel(
            [("owner_id", ASCENDING), ("folder_id", ASCENDING), *ACTIVITY_ORDER],
            name="owner_folder_activity",
        ),
        IndexModel([("owner_id", ASCENDING), ("llm_config_id", ASCENDING)], name="owner_preset"),
        IndexModel(
            [("owner_id", ASCENDING), ("import_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"import_key": {"$type": "string"}},
            name="owner_import_key_unique",
        ),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._conversations = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._conversations, self.INDEXES)

    async def insert(
        self,
        owner_id: ObjectId,
        *,
        title: str,
        title_source: str,
        folder_id: ObjectId | None,
        llm_config_id: ObjectId | None,
    ) -> ConversationRecord:
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            "title": title,
            "title_source": title_source,
            "folder_id": folder_id,
            "llm_config_id": llm_config_id,
            "pinned": False,
            "archived": False,
            "created_at": now,
            "updated_at": now,
            "last_message_at": None,
            "activity_at": now,
            "active_leaf_id": None,
        }
        await self._conversations.insert_one(doc)
        return conversation_from_document(doc)

    async def insert_imported(self, record: ConversationRecord, import_key: str) -> bool:
        """A conversation read from a file, under the key of its place in that file: False
        when that key was imported before (the same file sent again adds no duplicate)."""
        activity = record.last_message_at or record.updated_at
        try:
            await self._conversations.insert_one(
                {
                    "_id": record.id,
                    "owner_id": record.owner_id,
                    "title": record.title,
                    "title_source": record.title_source,
                    "folder_id": None,
                    "llm_config_id": None,
                    "pinned": False,
                    "archived": False,
                    "created_at": record.created_at,
                    "updated_at": record.updated_at,
                    "last_message_at": record.last_message_at,
                    "activity_at": activity,
                    "active_leaf_id": record.active_leaf_id,
                    "import_key": import_key,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def all_for_owner(self, owner_id: ObjectId) -> list[ConversationRecord]:
        """Every conversation of the user, oldest first (an account export)."""
        cursor = self._conversations.find({"owner_id": owner_id}).sort("_id", ASCENDING)
        return [conversation_from_document(doc) async for doc in cursor]

    async def imported_keys(self, owner_id: ObjectId, prefix: str) -> set[str]:
        """The import keys starting with `prefix` (one file's) already stored."""
        cursor = self._conversations.find(
            {"owner_id": owner_id, "import_key": {"$regex": f"^{re.escape(prefix)}"}},
            {"import_key": 1},
        )
        return {doc["import_key"] async for doc in cursor}

    async def get_many(
        self, owner_id: ObjectId, ids: list[ObjectId]
    ) -> dict[ObjectId, ConversationRecord]:
        cursor = self._conversations.find({"owner_id": owner_id, "_id": {"$in": ids}})
        return {doc["_id"]: conversation_from_document(doc) async for doc in cursor}

    async def get(self, owner_id: ObjectId, conversation_id: ObjectId) -> ConversationRecord | None:
        doc = await self._conversations.find_one({"_id": conversation_id, "owner_id": owner_id})
        return conversation_from_document(doc) if doc else None

    async def update(
        self, owner_id: ObjectId, conversation_id: ObjectId, fields: dict[str, Any]
    ) -> ConversationRecord | None:
        doc = await self._conversations.find_one_and_update(
            {"_id": conversation_id, "owner_id": owner_id},
            {"$set": {**fields, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        return conversation_from_document(doc) if doc else None

    async def set_auto_title(
        self,
        owner_id: ObjectId,
        conversation_id: ObjectId,
        title: str,
        replaceable: tuple[str, ...],
    ) -> bool:
        """Only while the title is still a provisional one: a user's own title always wins."""
        result = await self._conversations.update_one(
            {
                "_id": conversation_id,
                "owner_id": owner_id,
                "title_source": {"$in": list(replaceable)},
            },
            {"$set": {"title": title, "title_source": "auto", "updated_at": utc_now()}},
        )
        return result.modified_count == 1

    async def list_page(
        self,
        owner_id: ObjectId,
        where: ConversationFilter,
        size: int,
        *,
        after: str | None = None,
        before: str | None = None,
        backwards: bool = False,
    ) -> Page[ConversationRecord]:
        """Newest activity first, between the cursors: the `size` just after `after` (or the
        newest), or with `backwards` the `size` just before `before` (or the oldest)."""
        query = self._filter_query(owner_id, where)
        bounds = []
        if after is not None:
            activity, last_id = _cursor_key(after, "after")
            bounds.append(
                {
                    "$or": [
                        {"activity_at": {"$lt": activity}},
                        {"activity_at": activity, "_id": {"$lt": last_id}},
                    ]
                }
            )
        if before is not None:
            activity, first_id = _cursor_key(before, "before")
            bounds.append(
                {
                    "$or": [
                        {"activity_at": {"$gt": activity}},
                        {"activity_at": activity, "_id": {"$gt": first_id}},
                    ]
                }
            )
        page_query = {"$and": [query, *bounds]} if bounds else query
        order = OLDEST_FIRST if backwards else ACTIVITY_ORDER
        cursor = self._conversations.find(page_query).sort(order).limit(size + 1)
        docs = [doc async for doc in cursor] if size > 0 else []
        total = await self._conversations.count_documents(query)
        more = len(docs) > size
        docs = docs[:size]
        if backwards:
            docs.reverse()
        items = [
            (
                encode_cursor({"a": as_utc(doc["activity_at"]).isoformat(), "i": str(doc["_id"])}),
                conversation_from_document(doc),
            )
            for doc in docs
        ]
        return Page(
            items=items,
            has_next_page=before is not None if backwards else more,
            has_previous_page=more if backwards else after is not None,
            total_count=total,
        )

    def _filter_query(self, owner_id: ObjectId, where: ConversationFilter) -> dict[str, Any]:
        query: dict[str, Any] = {"owner_id": owner_id}
        if where.folder_id is not None:
            query["folder_id"] = where.folder_id
        if where.pinned is not None:
            query["pinned"] = where.pinned
        if where.archived is not None:
            query["archived"] = where.archived
        if where.search:
            # User input is matched literally: escaped, never run as a regex.
            query["$or"] = [
                {"title": {"$regex": re.escape(where.search), "$options": "i"}},
                {"_id": {"$in": list(where.matching_ids)}},
            ]
        return query

    async def move_out_of_folders(
        self, owner_id: ObjectId, folder_ids: list[ObjectId], new_folder: ObjectId | None
    ) -> None:
        await self._conversations.update_many(
            {"owner_id": owner_id, "folder_id": {"$in": folder_ids}},
            {"$set": {"folder_id": new_folder, "updated_at": utc_now()}},
        )

    async def ids_in_folders(
        self, owner_id: ObjectId, folder_ids: list[ObjectId]
    ) -> list[ObjectId]:
        cursor = self._conversations.find(
            {"owner_id": owner_id, "folder_id": {"$in": folder_ids}}, {"_id": 1}
        )
        return [doc["_id"] async for doc in cursor]

    async def clear_preset(self, owner_id: ObjectId, config_id: ObjectId) -> None:
        await self._conversations.update_many(
            {"owner_id": owner_id, "llm_config_id": config_id},
            {"$set": {"llm_config_id": None, "updated_at": utc_now()}},
        )

    async def delete_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> None:
        await self._conversations.delete_many({"_id": {"$in": ids}, "owner_id": owner_id})

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._conversations.delete_many({"owner_id": owner_id})
