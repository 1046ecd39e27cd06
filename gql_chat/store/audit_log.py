"""The `audit_log` collection: append-only (nothing here updates or deletes a record; a TTL index
on `expires_at` ends each after the retention), read newest first by `_id` (an ObjectId made
when the record is written)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.audit import AuditAction, AuditEntry, AuditOutcome
from gql_chat.domain.clock import as_utc
from gql_chat.store.indexes import ensure_indexes


def entry_to_document(entry: AuditEntry, expires_at: datetime) -> dict[str, Any]:
    return {
        "_id": entry.id,
        "at": entry.at,
        "action": entry.action.value,
        "outcome": entry.outcome.value,
        "actor_id": entry.actor_id,
        "subject_id": entry.subject_id,
        "client_ip": entry.client_ip,
        "request_id": entry.request_id,
        "details": entry.details,
        "expires_at": expires_at,
    }


def entry_from_document(doc: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=doc["_id"],
        at=as_utc(doc["at"]),
        action=AuditAction(doc["action"]),
        outcome=AuditOutcome(doc["outcome"]),
        actor_id=doc.get("actor_id"),
        subject_id=doc.get("subject_id"),
        client_ip=doc.get("client_ip"),
        request_id=doc.get("request_id"),
        details={str(k): str(v) for k, v in (doc.get("details") or {}).items()},
    )


@dataclass(frozen=True, slots=True)
class AuditMatch:
    """Records by or about `user_id`, of `action`, written in [since, until)."""

    user_id: ObjectId | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.user_id is not None:
            query["$or"] = [{"subject_id": self.user_id}, {"actor_id": self.user_id}]
        if self.action is not None:
            query["action"] = self.action.value
        at: dict[str, datetime] = {}
        if self.since is not None:
            at["$gte"] = self.since
        if self.until is not None:
            at["$lt"] = self.until
        if at:
            query["at"] = at
        return query


class AuditLogStore:
    INDEXES = [
        IndexModel([("subject_id", ASCENDING), ("_id", DESCENDING)], name="subject_newest"),
        IndexModel([("actor_id", ASCENDING), ("_id", DESCENDING)], name="actor_newest"),
        IndexModel([("action", ASCENDING), ("_id", DESCENDING)], name="action_newest"),
        IndexModel([("at", DESCENDING)], name="at"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._log = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._log, self.INDEXES)

    async def append(self, entry: AuditEntry, expires_at: datetime) -> None:
        await self._log.insert_one(entry_to_document(entry, expires_at))

    async def newest_first(
        self, limit: int, older_than: ObjectId | None, match: AuditMatch
    ) -> list[AuditEntry]:
        """The matching records older than the cursor's, newest first."""
        query = match.query()
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        cursor = self._log.find(query).sort("_id", DESCENDING).limit(limit)
        return [entry_from_document(doc) async for doc in cursor]

    async def count(self, match: AuditMatch) -> int:
        return await self._log.count_documents(match.query())
