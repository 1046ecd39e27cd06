"""The `attachments` collection (what each upload is, whose, and where it is sent) and the
GridFS bucket `attachment_files` (its bytes, in PyMongo's `AsyncGridFSBucket` layout: the
`attachment_files.files` and `attachment_files.chunks` collections).

An attachment's document is written first, `pending`, with the id its file will have; the file
next; then the document is marked ready. Whatever fails or stops halfway leaves a pending
document that the sweep of unsent uploads finds and deletes with its chunks, so no chunk is
ever left without a document that leads to it. Deletes go the other way: chunks, file, then the
document, so that a delete that stops halfway is finished by the next one."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket, AsyncGridOut, NoFile
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from gql_chat.domain.attachments import AttachmentKind, AttachmentRecord
from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.store.indexes import ensure_indexes

BUCKET = "attachment_files"
CHUNK_BYTES = 255 * 1024
"""GridFS's default chunk size: each chunk document stays well under MongoDB's 16 MB."""
DELETE_BATCH = 500


def attachment_from_document(doc: dict[str, Any]) -> AttachmentRecord:
    return AttachmentRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        file_id=doc["file_id"],
        kind=AttachmentKind(doc["kind"]),
        filename=doc["filename"],
        media_type=doc["media_type"],
        size=int(doc["size"]),
        sha256=doc["sha256"],
        created_at=as_utc(doc["created_at"]),
        conversation_id=doc.get("conversation_id"),
        width=doc.get("width"),
        height=doc.get("height"),
        page_count=doc.get("page_count"),
    )


def attachment_to_document(attachment: AttachmentRecord) -> dict[str, Any]:
    return {
        "_id": attachment.id,
        "owner_id": attachment.owner_id,
        "file_id": attachment.file_id,
        "kind": attachment.kind.value,
        "filename": attachment.filename,
        "media_type": attachment.media_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "created_at": attachment.created_at,
        "conversation_id": attachment.conversation_id,
        "width": attachment.width,
        "height": attachment.height,
        "page_count": attachment.page_count,
    }


READY = {"pending": {"$ne": True}, "deleting": {"$ne": True}}


class AttachmentStore:
    INDEXES = [
        IndexModel(
            [("owner_id", ASCENDING), ("conversation_id", ASCENDING)], name="owner_conversation"
        ),
        IndexModel([("conversation_id", ASCENDING), ("created_at", ASCENDING)], name="unsent"),
    ]

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._attachments: AsyncCollection[dict[str, Any]] = db["attachments"]
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)
        self._files: AsyncCollection[dict[str, Any]] = db[f"{BUCKET}.files"]
        self._chunks: AsyncCollection[dict[str, Any]] = db[f"{BUCKET}.chunks"]

    async def create_indexes(self) -> None:
        """The bucket's own indexes too (GridFS creates them on its first write into an empty
        bucket, which concurrent first uploads would race on)."""
        await ensure_indexes(self._attachments, self.INDEXES)
        await ensure_indexes(
            self._files,
            [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])],
        )
        await ensure_indexes(
            self._chunks,
            [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)],
        )

    async def add_pending(self, attachment: AttachmentRecord) -> None:
        await self._attachments.insert_one({**attachment_to_document(attachment), "pending": True})

    async def mark_ready(self, attachment_id: ObjectId) -> None:
        await self._attachments.update_one({"_id": attachment_id}, {"$unset": {"pending": ""}})

    async def write_file(self, attachment: AttachmentRecord, chunks: AsyncIterator[bytes]) -> None:
        """The bytes into GridFS under `attachment.file_id`, a chunk at a time."""
        stream = self._bucket.open_upload_stream_with_id(
            attachment.file_id,
            attachment.filename,
            chunk_size_bytes=CHUNK_BYTES,
            metadata={"owner_id": attachment.owner_id, "attachment_id": attachment.id},
        )
        try:
            async for chunk in chunks:
                await stream.write(chunk)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()

    async def open_file(self, file_id: ObjectId) -> AsyncGenerator[bytes]:
        """The stored bytes, a GridFS chunk at a time; opened here, so that a missing file is
        known before anything is sent. Raises `FileNotFoundError`."""
        try:
            stream = await self._bucket.open_download_stream(file_id)
        except NoFile:
            raise FileNotFoundError(str(file_id)) from None
        return chunks_of(stream)

    async def copy_to(
        self, owner_id: ObjectId, ids: list[ObjectId], conversation_id: ObjectId
    ) -> dict[ObjectId, ObjectId]:
        """Copies of the user's attachments `ids` (their bytes too), bound to
        `conversation_id`: old id to new. Each copy is written as an upload is (pending first)."""
        copies: dict[ObjectId, ObjectId] = {}
        for original in (await self.get_many(owner_id, ids)).values():
            copy = replace(
                original,
                id=ObjectId(),
                file_id=ObjectId(),
                conversation_id=conversation_id,
                created_at=utc_now(),
            )
            await self.add_pending(copy)
            try:
                await self.write_file(copy, await self.open_file(original.file_id))
            except FileNotFoundError:
                continue  # deleted meanwhile: the pending copy is swept
            await self.mark_ready(copy.id)
            copies[original.id] = copy.id
        return copies

    async def used_bytes(self, owner_id: ObjectId) -> int:
        """What the user's uploads take, pending ones included (they reserve their size)."""
        cursor = await self._attachments.aggregate(
            [
                {"$match": {"owner_id": owner_id}},
                {"$group": {"_id": None, "bytes": {"$sum": "$size"}}},
            ]
        )
        rows = await cursor.to_list(1)
        return int(rows[0]["bytes"]) if rows else 0

    async def get(self, owner_id: ObjectId, attachment_id: ObjectId) -> AttachmentRecord | None:
        doc = await self._attachments.find_one(
            {"_id": attachment_id, "owner_id": owner_id, **READY}
        )
        return attachment_from_document(doc) if doc else None

    async def get_many(
        self, owner_id: ObjectId, ids: Iterable[ObjectId]
    ) -> dict[ObjectId, AttachmentRecord]:
        cursor = self._attachments.find({"_id": {"$in": list(ids)}, "owner_id": owner_id, **READY})
        return {doc["_id"]: attachment_from_document(doc) async for doc in cursor}

    async def all_for_owner(self, owner_id: ObjectId) -> list[AttachmentRecord]:
        """Every stored file of the user, oldest first (an account export)."""
        cursor = self._attachments.find({"owner_id": owner_id, **READY}).sort("_id", ASCENDING)
        return [attachment_from_document(doc) async for doc in cursor]

    async def bind(self, owner_id: ObjectId, ids: list[ObjectId], conversation_id: ObjectId) -> int:
        """Bind unsent uploads to `conversation_id`; returns how many of `ids` are now bound to
        it (those bound before included)."""
        await self._attachments.update_many(
            {"_id": {"$in": ids}, "owner_id": owner_id, "conversation_id": None, **READY},
            {"$set": {"conversation_id": conversation_id}},
        )
        return await self._attachments.count_documents(
            {"_id": {"$in": ids}, "owner_id": owner_id, "conversation_id": conversation_id}
        )

    async def unbind(
        self, owner_id: ObjectId, ids: list[ObjectId], conversation_id: ObjectId
    ) -> None:
        await self._attachments.update_many(
            {"_id": {"$in": ids}, "owner_id": owner_id, "conversation_id": conversation_id},
            {"$set": {"conversation_id": None}},
        )

    async def delete_ids(self, ids: list[ObjectId]) -> None:
        await self._delete_where({"_id": {"$in": ids}})

    async def delete_for_conversations(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> None:
        await self._delete_where(
            {"owner_id": owner_id, "conversation_id": {"$in": conversation_ids}}
        )

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._delete_where({"owner_id": owner_id})

    async def delete_unsent_before(self, cutoff: datetime) -> int:
        """Uploads never sent (pending ones too: an upload that stopped halfway)."""
        return await self._delete_where({"conversation_id": None, "created_at": {"$lt": cutoff}})

    async def _delete_where(self, query: dict[str, Any]) -> int:
        """In batches. Each batch is first marked `deleting`, only where it still matches
        `query` (an upload the sweep picked may have been sent since), and a marked attachment
        can no longer be bound or read; then its chunks, files and documents go. A delete that
        stops halfway leaves marked documents that still match, for the next one."""
        deleted = 0
        while True:
            cursor = self._attachments.find(query, {"_id": 1}).limit(DELETE_BATCH)
            ids = [doc["_id"] async for doc in cursor]
            if not ids:
                return deleted
            await self._attachments.update_many(
                {"$and": [query, {"_id": {"$in": ids}}]}, {"$set": {"deleting": True}}
            )
            marked = self._attachments.find({"_id": {"$in": ids}, "deleting": True}, {"file_id": 1})
            batch = [doc async for doc in marked]
            file_ids = [doc["file_id"] for doc in batch]
            await self._chunks.delete_many({"files_id": {"$in": file_ids}})
            await self._files.delete_many({"_id": {"$in": file_ids}})
            await self._attachments.delete_many({"_id": {"$in": [doc["_id"] for doc in batch]}})
            deleted += len(batch)


async def chunks_of(stream: AsyncGridOut) -> AsyncGenerator[bytes]:
    try:
        while chunk := await stream.readchunk():
            yield chunk
    finally:
        await stream.close()
