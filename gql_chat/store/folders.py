"""The `folders` collection: a per-user tree through `parent_id`, siblings ordered by `position`.

`folder_locks` holds one short-lived document per user whose folder tree is being changed: the
lease that serializes tree changes across app instances (see `FolderStore.try_lock`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.folders import FolderRecord
from gql_chat.store.indexes import ensure_indexes


def folder_from_document(doc: dict[str, Any]) -> FolderRecord:
    return FolderRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        name=doc["name"],
        parent_id=doc.get("parent_id"),
        position=int(doc.get("position", 0)),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
    )


SIBLING_ORDER = [("position", ASCENDING), ("_id", ASCENDING)]


class FolderStore:
    INDEXES = [
        IndexModel(
            [("owner_id", ASCENDING), ("parent_id", ASCENDING), ("position", ASCENDING)],
            name="owner_parent_position",
        )
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._folders = collection
        self._locks = collection.database["folder_locks"]

    async def create_indexes(self) -> None:
        await ensure_indexes(self._folders, self.INDEXES)

    async def insert(
        self, owner_id: ObjectId, name: str, parent_id: ObjectId | None, position: int
    ) -> FolderRecord:
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            "name": name,
            "parent_id": parent_id,
            "position": position,
            "created_at": now,
            "updated_at": now,
        }
        await self._folders.insert_one(doc)
        return folder_from_document(doc)

    async def get(self, owner_id: ObjectId, folder_id: ObjectId) -> FolderRecord | None:
        doc = await self._folders.find_one({"_id": folder_id, "owner_id": owner_id})
        return folder_from_document(doc) if doc else None

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[FolderRecord]:
        cursor = self._folders.find({"_id": {"$in": ids}, "owner_id": owner_id})
        return [folder_from_document(doc) async for doc in cursor]

    async def list_all(self, owner_id: ObjectId) -> list[FolderRecord]:
        cursor = self._folders.find({"owner_id": owner_id}).sort(
            [("parent_id", ASCENDING), *SIBLING_ORDER]
        )
        return [folder_from_document(doc) async for doc in cursor]

    async def children_of(
        self, owner_id: ObjectId, parent_ids: list[ObjectId | None]
    ) -> list[FolderRecord]:
        cursor = self._folders.find({"owner_id": owner_id, "parent_id": {"$in": parent_ids}}).sort(
            SIBLING_ORDER
        )
        return [folder_from_document(doc) async for doc in cursor]

    async def count(self, owner_id: ObjectId) -> int:
        return await self._folders.count_documents({"owner_id": owner_id})

    async def count_children(self, owner_id: ObjectId, parent_id: ObjectId | None) -> int:
        return await self._folders.count_documents({"owner_id": owner_id, "parent_id": parent_id})

    async def update(self, owner_id: ObjectId, folder_id: ObjectId, **fields: Any) -> None:
        await self._folders.update_one(
            {"_id": folder_id, "owner_id": owner_id},
            {"$set": {**fields, "updated_at": utc_now()}},
        )

    async def move(
        self,
        owner_id: ObjectId,
        folder_id: ObjectId,
        expected_parent: ObjectId | None,
        new_parent: ObjectId | None,
    ) -> bool:
        """Compare-and-set of the parent: False (nothing written) when the folder no longer hangs
        from `expected_parent`."""
        result = await self._folders.update_one(
            {"_id": folder_id, "owner_id": owner_id, "parent_id": expected_parent},
            {"$set": {"parent_id": new_parent, "updated_at": utc_now()}},
        )
        return result.matched_count == 1

    async def try_lock(self, owner_id: ObjectId, holder: str, lease: timedelta) -> bool:
        """Take the owner's tree lease for `holder`, atomically: insert the lease document (the
        unique `_id` makes a second insert fail), or take over one whose lease ran out (its
        holder crashed or stalled). False when someone else holds it."""
        now = utc_now()
        try:
            await self._locks.insert_one(
                {"_id": owner_id, "holder": holder, "expires_at": now + lease}
            )
            return True
        except DuplicateKeyError:
            pass
        taken = await self._locks.update_one(
            {"_id": owner_id, "expires_at": {"$lt": now}},
            {"$set": {"holder": holder, "expires_at": now + lease}},
        )
        return taken.modified_count == 1

    async def unlock(self, owner_id: ObjectId, holder: str) -> None:
        """Conditional on `holder`: never releases a lease someone else took over."""
        await self._locks.delete_one({"_id": owner_id, "holder": holder})

    async def set_positions(self, owner_id: ObjectId, ordered_ids: list[ObjectId]) -> None:
        """Number the given siblings 0..n-1 in the given order."""
        if ordered_ids:
            await self._folders.bulk_write(
                [
                    UpdateOne({"_id": folder_id, "owner_id": owner_id}, {"$set": {"position": i}})
                    for i, folder_id in enumerate(ordered_ids)
                ]
            )

    async def reparent_children(
        self, owner_id: ObjectId, old_parent: ObjectId, new_parent: ObjectId | None
    ) -> None:
        await self._folders.update_many(
            {"owner_id": owner_id, "parent_id": old_parent},
            {"$set": {"parent_id": new_parent, "updated_at": utc_now()}},
        )

    async def delete_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> None:
        await self._folders.delete_many({"_id": {"$in": ids}, "owner_id": owner_id})

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._folders.delete_many({"owner_id": owner_id})
