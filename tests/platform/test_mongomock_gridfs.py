"""PyMongo's own `AsyncGridFSBucket` runs on the embedded store: the same files and chunks
collections, chunked writes and reads, and deletes as on MongoDB."""

from __future__ import annotations

import io

import pytest
from gridfs import AsyncGridFSBucket

from gql_chat.platform import mongomock_gridfs
from gql_chat.platform.versions import UnsupportedVersion
from gql_chat.store.embedded import open_embedded_client


async def test_a_bucket_writes_reads_and_deletes_in_chunks() -> None:
    db = open_embedded_client()["gridfs_test"]
    bucket = AsyncGridFSBucket(db, bucket_name="files", chunk_size_bytes=1000)
    data = bytes(range(256)) * 10  # 2,560 bytes: three chunks
    file_id = await bucket.upload_from_stream("a.bin", io.BytesIO(data), metadata={"k": 1})
    assert await db["files.chunks"].count_documents({"files_id": file_id}) == 3
    stream = await bucket.open_download_stream(file_id)
    assert (stream.length, stream.metadata) == (len(data), {"k": 1})
    assert await stream.read() == data
    indexes = [index["name"] async for index in await db["files.chunks"].list_indexes()]
    assert "files_id_1_n_1" in indexes
    await bucket.delete(file_id)
    assert await db["files.chunks"].count_documents({}) == 0
    assert await db["files.files"].count_documents({}) == 0


def test_installing_twice_wraps_once() -> None:
    mongomock_gridfs.install()
    collection_getattr = mongomock_gridfs.AsyncCollection.__getattr__
    mongomock_gridfs.install()
    assert mongomock_gridfs.AsyncCollection.__getattr__ is collection_getattr


def test_an_unchecked_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongomock_gridfs, "distribution_version", lambda name: "9.0.0")
    with pytest.raises(UnsupportedVersion, match=r"mongomock_gridfs"):
        mongomock_gridfs.require_supported_versions()
