"""The `jobs` collection: one document per background job, which is its progress report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.jobs import (
    ExportJobRecord,
    ImportFormat,
    ImportJobRecord,
    ImportProblem,
    JobStatus,
)
from gql_chat.store.indexes import ensure_indexes

IMPORT = "import"
EXPORT = "export"
MAX_PROBLEMS_KEPT = 1_000
"""Problems a job's report lists; past them it counts only (a file may hold 5,000 broken
conversations)."""


def import_job_from_document(doc: dict[str, Any]) -> ImportJobRecord:
    finished = doc.get("finished_at")
    return ImportJobRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        format=ImportFormat(doc["format"]),
        sha256=doc["sha256"],
        status=JobStatus(doc["status"]),
        total=int(doc.get("total") or 0),
        done=int(doc.get("done") or 0),
        imported=int(doc.get("imported") or 0),
        skipped=int(doc.get("skipped") or 0),
        placeholders=int(doc.get("placeholders") or 0),
        problems=tuple(
            ImportProblem(p["index"], p.get("title"), p["message"]) for p in doc.get("problems", ())
        ),
        problem_count=int(doc.get("problem_count") or 0),
        error=doc.get("error"),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
        finished_at=as_utc(finished) if finished else None,
    )


def export_job_from_document(doc: dict[str, Any]) -> ExportJobRecord:
    finished, expires = doc.get("finished_at"), doc.get("expires_at")
    return ExportJobRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        status=JobStatus(doc["status"]),
        file_id=doc.get("file_id"),
        size=doc.get("size"),
        error=doc.get("error"),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
        finished_at=as_utc(finished) if finished else None,
        expires_at=as_utc(expires) if expires else None,
    )


class JobStore:
    INDEXES = [
        IndexModel(
            [
                ("owner_id", ASCENDING),
                ("kind", ASCENDING),
                ("sha256", ASCENDING),
                ("_id", DESCENDING),
            ],
            name="owner_kind_file",
        ),
        IndexModel([("kind", ASCENDING), ("expires_at", ASCENDING)], name="kind_expiry"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._jobs = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._jobs, self.INDEXES)

    async def add_import(
        self, owner_id: ObjectId, fmt: ImportFormat, sha256: str
    ) -> ImportJobRecord:
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            "kind": IMPORT,
            "format": fmt.value,
            "sha256": sha256,
            "status": JobStatus.PENDING.value,
            "problems": [],
            "created_at": now,
            "updated_at": now,
        }
        await self._jobs.insert_one(doc)
        return import_job_from_document(doc)

    async def get_import(self, owner_id: ObjectId, job_id: ObjectId) -> ImportJobRecord | None:
        doc = await self._jobs.find_one({"_id": job_id, "owner_id": owner_id, "kind": IMPORT})
        return import_job_from_document(doc) if doc else None

    async def latest_import_of(
        self, owner_id: ObjectId, fmt: ImportFormat, sha256: str
    ) -> ImportJobRecord | None:
        """The newest import of this file by this user, in this format."""
        doc = await self._jobs.find_one(
            {"owner_id": owner_id, "kind": IMPORT, "sha256": sha256, "format": fmt.value},
            sort=[("_id", DESCENDING)],
        )
        return import_job_from_document(doc) if doc else None

    async def progress(self, job_id: ObjectId, fields: dict[str, Any]) -> None:
        """Counters and status so far (and the job is alive: `updated_at`)."""
        await self._jobs.update_one({"_id": job_id}, {"$set": {**fields, "updated_at": utc_now()}})

    async def add_problems(self, job_id: ObjectId, problems: list[ImportProblem]) -> None:
        if not problems:
            return
        await self._jobs.update_one(
            {"_id": job_id},
            {
                "$push": {
                    "problems": {
                        "$each": [
                            {"index": p.index, "title": p.title, "message": p.message}
                            for p in problems
                        ],
                        "$slice": MAX_PROBLEMS_KEPT,
                    }
                },
                "$inc": {"problem_count": len(problems)},
            },
        )

    async def finish(self, job_id: ObjectId, fields: dict[str, Any], at: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job_id}, {"$set": {**fields, "updated_at": at, "finished_at": at}}
        )

    async def add_export(self, owner_id: ObjectId) -> ExportJobRecord:
        now = utc_now()
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            "kind": EXPORT,
            "status": JobStatus.PENDING.value,
            "created_at": now,
            "updated_at": now,
        }
        await self._jobs.insert_one(doc)
        return export_job_from_document(doc)

    async def get_export(self, owner_id: ObjectId, job_id: ObjectId) -> ExportJobRecord | None:
        doc = await self._jobs.find_one({"_id": job_id, "owner_id": owner_id, "kind": EXPORT})
        return export_job_from_document(doc) if doc else None

    async def expired_exports(self, now: datetime) -> list[ExportJobRecord]:
        """Finished exports whose archive outlived its time (and still has one)."""
        cursor = self._jobs.find(
            {"kind": EXPORT, "expires_at": {"$lt": now}, "file_id": {"$ne": None}}
        )
        return [export_job_from_document(doc) async for doc in cursor]

    async def older_archives(self, owner_id: ObjectId, newer: ObjectId) -> list[ExportJobRecord]:
        """The user's exports before `newer` that still hold an archive (it replaces them)."""
        cursor = self._jobs.find(
            {"owner_id": owner_id, "kind": EXPORT, "_id": {"$lt": newer}, "file_id": {"$ne": None}}
        )
        return [export_job_from_document(doc) async for doc in cursor]

    async def forget_file(self, job_id: ObjectId, reason: str) -> None:
        """Its archive is deleted: the job reads FAILED with `reason`."""
        await self._jobs.update_one(
            {"_id": job_id},
            {"$set": {"file_id": None, "status": JobStatus.FAILED.value, "error": reason}},
        )

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._jobs.delete_many({"owner_id": owner_id})
