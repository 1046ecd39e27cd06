"""Account archives (`exportAccount`): zip files in the GridFS bucket `account_archives`, each
tagged with its owner (deleting the account deletes them) and its job."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import IO, Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from gql_chat.store.attachments import CHUNK_BYTES, chunks_of
from gql_chat.store.indexes import ensure_indexes

BUCKET = "account_archives"


class ArchiveStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)
        self._files = db[f"{BUCKET}.files"]
        self._chunks = db[f"{BUCKET}.chunks"]

    async def create_indexes(self) -> None:
        """The owner's archives are found (to delete them with the account) by an index; the
        bucket's own indexes too (GridFS makes them on its first write, which could race)."""
        await ensure_indexes(
            self._files,
            [
                IndexModel([("metadata.owner_id", ASCENDING)], name="owner"),
                IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)]),
            ],
        )
        await ensure_indexes(
            self._chunks,
            [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)],
        )

    async def write(self, owner_id: ObjectId, job_id: ObjectId, source: IO[bytes]) -> ObjectId:
        """The archive read from `source` (a file on disk), a chunk at a time."""
        file_id = ObjectId()
        stream = self._bucket.open_upload_stream_with_id(
            file_id,
            f"gql_chat-export-{job_id}.zip",
            metadata={"owner_id": owner_id, "job_id": job_id},
        )
        try:
            while chunk := source.read(CHUNK_BYTES):
                await stream.write(chunk)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()
        return file_id

    async def open(self, file_id: ObjectId) -> AsyncGenerator[bytes]:
        """Raises `FileNotFoundError`."""
        try:
            stream = await self._bucket.open_download_stream(file_id)
        except NoFile:
            raise FileNotFoundError(str(file_id)) from None
        return chunks_of(stream)

    async def delete(self, file_id: ObjectId) -> None:
        with contextlib.suppress(NoFile):  # deleted already
            await self._bucket.delete(file_id)

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        cursor = self._files.find({"metadata.owner_id": owner_id}, {"_id": 1})
        for file_id in [doc["_id"] async for doc in cursor]:
            await self.delete(file_id)
