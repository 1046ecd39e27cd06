"""The `messages` collection: a tree per conversation through `parent_id`.

An assistant reply is saved while it streams: `content` holds the text so far and `seq_ends[i]`
is where delta `i + 1` ends in it, so any suffix after a given `seq` can be replayed exactly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.messages import (
    Feedback,
    FeedbackRating,
    MessageNode,
    MessageRecord,
    MessageRole,
    MessageStatus,
    ThreadTurn,
)
from gql_chat.errors import AlreadyExists, Conflict
from gql_chat.store.indexes import ensure_indexes
from gql_chat.store.usage import ARCHIVED_FIELDS, usage_from_document, usage_to_document

UNFINISHED = [MessageStatus.PENDING.value, MessageStatus.STREAMING.value]
RATINGS = frozenset(FeedbackRating)
# Lists never need the replay offsets.
LIST_PROJECTION = {"seq_ends": 0}


def message_from_document(doc: dict[str, Any]) -> MessageRecord:
    error = doc.get("error") or {}
    timings = doc.get("timings") or {}
    return MessageRecord(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        conversation_id=doc["conversation_id"],
        role=MessageRole(doc["role"]),
        content=doc.get("content") or "",
        status=MessageStatus(doc["status"]),
        model=doc.get("model"),
        parent_id=doc.get("parent_id"),
        seq=int(doc.get("seq") or 0),
        seq_ends=tuple(doc.get("seq_ends") or ()),
        usage=usage_from_document(doc.get("usage")),
        error_code=error.get("code"),
        error_message=error.get("message"),
        client_message_id=doc.get("client_message_id"),
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
        reasoning=doc.get("reasoning") or "",
        attachment_ids=tuple(doc.get("attachment_ids") or ()),
        finish_reason=doc.get("finish_reason"),
        first_token_ms=timings.get("time_to_first_token_ms"),
        total_ms=timings.get("total_ms"),
        feedback=_feedback(doc.get("feedback")),
        started_at=as_utc(doc["started_at"]) if doc.get("started_at") else None,
    )


def _feedback(doc: dict[str, Any] | None) -> Feedback | None:
    if not doc:
        return None
    rating = doc.get("rating")
    return Feedback(
        rating=FeedbackRating(rating) if isinstance(rating, str) and rating in RATINGS else None,
        comment=doc.get("comment"),
        updated_at=as_utc(doc["updated_at"]),
    )


def message_to_document(message: MessageRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": message.id,
        "owner_id": message.owner_id,
        "conversation_id": message.conversation_id,
        "role": message.role.value,
        "content": message.content,
        "status": message.status.value,
        "model": message.model,
        "parent_id": message.parent_id,
        "seq": message.seq,
        "seq_ends": list(message.seq_ends),
        **({"reasoning": message.reasoning} if message.reasoning else {}),
        **({"attachment_ids": list(message.attachment_ids)} if message.attachment_ids else {}),
        "usage": usage_to_document(message.usage) if message.usage else None,
        "error": (
            {"code": message.error_code, "message": message.error_message}
            if message.error_code is not None
            else None
        ),
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }
    if message.client_message_id is not None:
        doc["client_message_id"] = message.client_message_id
    return doc


class MessageStore:
    INDEXES = [
        IndexModel(
            [("owner_id", ASCENDING), ("conversation_id", ASCENDING), ("_id", ASCENDING)],
            name="owner_conversation",
        ),
        IndexModel(
            [("owner_id", ASCENDING), ("client_message_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"client_message_id": {"$type": "string"}},
            name="owner_client_message_unique",
        ),
        IndexModel([("status", ASCENDING)], name="status"),
        # The admins' analytics read a time window of every user's messages.
        IndexModel([("created_at", ASCENDING)], name="created_at"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._messages = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._messages, self.INDEXES)

    @staticmethod
    def draft(
        owner_id: ObjectId,
        conversation_id: ObjectId,
        *,
        role: MessageRole,
        content: str,
        status: MessageStatus,
        parent_id: ObjectId | None,
        model: str | None = None,
        client_message_id: str | None = None,
        attachment_ids: tuple[ObjectId, ...] = (),
    ) -> MessageRecord:
        """A new message with its id, not yet stored: a reply can start before it is written."""
        now = utc_now()
        return message_from_document(
            {
                "_id": ObjectId(),
                "owner_id": owner_id,
                "conversation_id": conversation_id,
                "role": role.value,
                "content": content,
                "status": status.value,
                "model": model,
                "parent_id": parent_id,
                "client_message_id": client_message_id,
                "attachment_ids": list(attachment_ids),
                "created_at": now,
                "updated_at": now,
            }
        )

    async def add(self, message: MessageRecord) -> None:
        """Raises `AlreadyExists` when its `client_message_id` was used before."""
        try:
            await self._messages.insert_one(message_to_document(message))
        except DuplicateKeyError as exc:
            raise AlreadyExists(
                "A message with this clientMessageId was sent before.", field="clientMessageId"
            ) from exc

    async def add_many(self, messages: list[MessageRecord]) -> None:
        """Messages read from a file (no `client_message_id`: nothing to clash)."""
        if messages:
            await self._messages.insert_many([message_to_document(m) for m in messages])

    async def get(self, owner_id: ObjectId, message_id: ObjectId) -> MessageRecord | None:
        doc = await self._messages.find_one({"_id": message_id, "owner_id": owner_id})
        return message_from_document(doc) if doc else None

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[MessageRecord]:
        """The messages of `ids` that exist, in the order of `ids` (a path, a page window)."""
        cursor = self._messages.find({"_id": {"$in": ids}, "owner_id": owner_id}, LIST_PROJECTION)
        found = {doc["_id"]: message_from_document(doc) async for doc in cursor}
        return [found[i] for i in ids if i in found]

    async def thread(self, owner_id: ObjectId, conversation_id: ObjectId) -> list[ThreadTurn]:
        """Every message of the conversation as a prompt needs it: one read gives both the
        tree (for the path to a message) and the text of its turns."""
        cursor = self._messages.find(
            {"owner_id": owner_id, "conversation_id": conversation_id},
            {"parent_id": 1, "role": 1, "content": 1, "attachment_ids": 1},
        )
        return [
            ThreadTurn(
                id=doc["_id"],
                parent_id=doc.get("parent_id"),
                role=MessageRole(doc["role"]),
                content=doc.get("content") or "",
                attachment_ids=tuple(doc.get("attachment_ids") or ()),
            )
            async for doc in cursor
        ]

    async def find_by_client_id(
        self, owner_id: ObjectId, client_message_id: str
    ) -> MessageRecord | None:
        doc = await self._messages.find_one(
            {"owner_id": owner_id, "client_message_id": client_message_id}
        )
        return message_from_document(doc) if doc else None

    async def first_child(self, owner_id: ObjectId, parent_id: ObjectId) -> MessageRecord | None:
        cursor = (
            self._messages.find({"owner_id": owner_id, "parent_id": parent_id}, LIST_PROJECTION)
            .sort("_id", ASCENDING)
            .limit(1)
        )
        docs = [doc async for doc in cursor]
        return message_from_document(docs[0]) if docs else None

    async def nodes(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> list[MessageNode]:
        """Every message of the conversations, oldest first, without text."""
        cursor = self._messages.find(
            {"owner_id": owner_id, "conversation_id": {"$in": conversation_ids}},
            {"_id": 1, "conversation_id": 1, "parent_id": 1},
        ).sort("_id", ASCENDING)
        return [
            MessageNode(
                id=d["_id"], conversation_id=d["conversation_id"], parent_id=d.get("parent_id")
            )
            async for d in cursor
        ]

    async def save_progress(
        self, message_id: ObjectId, saved: int, texts: tuple[str, str], new_ends: list[int]
    ) -> int | None:
        """Append deltas `saved + 1 ...` (their answer and reasoning `texts` and where each
        ends) to the text saved so far, only while the reply is unfinished and only onto
        exactly `saved` stored deltas: the write costs what is new, not the whole reply, and is
        never applied twice (a write that timed out yet landed, or lands late, makes the next
        one match nothing rather than append again). Returns the number of deltas now stored,
        or None once finished."""
        count = saved + len(new_ends)
        result = await self._messages.update_one(
            {"_id": message_id, "status": {"$in": UNFINISHED}, "seq": saved},
            _appending(saved, texts, new_ends, MessageStatus.STREAMING, utc_now()),
        )
        if result.matched_count:
            return count
        doc = await self._messages.find_one({"_id": message_id}, {"seq": 1, "status": 1})
        if doc is None or doc["status"] not in UNFINISHED:
            return None
        return int(doc.get("seq") or 0)

    async def finish(self, message_id: ObjectId, fields: dict[str, Any]) -> bool:
        """The one final write: False when someone else already finished the message."""
        result = await self._messages.update_one(
            {"_id": message_id, "status": {"$in": UNFINISHED}},
            {"$set": {**fields, "updated_at": utc_now()}},
        )
        return result.modified_count == 1

    async def reopen(self, reply: MessageRecord, claim: ObjectId) -> bool:
        """Claim a finished reply for its continuation (`claim` names it): STREAMING again,
        only while it is as `reply` says (its status and its saved deltas), so two
        continuations cannot both claim it. Its old lease is dropped: until renewed, it counts
        from this write."""
        now = utc_now()
        result = await self._messages.update_one(
            {
                "_id": reply.id,
                "owner_id": reply.owner_id,
                "status": reply.status.value,
                "seq": reply.seq,
            },
            {
                "$set": {
                    "status": MessageStatus.STREAMING.value,
                    "finish_reason": None,
                    "continuation": claim,
                    "started_at": now,
                    "updated_at": now,
                },
                "$unset": {"lease_until": ""},
            },
        )
        return result.modified_count == 1

    async def restore(self, reply: MessageRecord, claim: ObjectId) -> None:
        """Undo `reopen` when the continuation it claimed for did not start (nothing else was
        written); a reply claimed by another continuation since is left alone."""
        await self._messages.update_one(
            {"_id": reply.id, "status": MessageStatus.STREAMING.value, "continuation": claim},
            {
                "$set": {
                    "status": reply.status.value,
                    "finish_reason": reply.finish_reason,
                    "updated_at": utc_now(),
                }
            },
        )

    async def renew_leases(self, message_ids: list[ObjectId], until: datetime) -> None:
        """The replies this instance generates are alive until `until` (with several
        instances: another one ends a reply whose lease runs out)."""
        if message_ids:
            await self._messages.update_many(
                {"_id": {"$in": message_ids}, "status": {"$in": UNFINISHED}},
                {"$set": {"lease_until": until}},
            )

    async def abandoned(
        self, now: datetime, lease: timedelta, limit: int
    ) -> list[tuple[ObjectId, list[int]]]:
        """Up to `limit` of the replies `interrupt_abandoned` would end: each one's id and the
        ends of its saved deltas."""
        cursor = self._messages.find(_abandoned(now, lease), {"seq_ends": 1}, limit=limit)
        return [(doc["_id"], list(doc.get("seq_ends") or ())) async for doc in cursor]

    async def interrupt_abandoned_with(
        self,
        message_id: ObjectId,
        now: datetime,
        lease: timedelta,
        appended: tuple[int, tuple[str, str], list[int]],
    ) -> bool:
        """End one abandoned reply (as `interrupt_abandoned`) with deltas its instance streamed
        but never saved appended (`save_progress`'s `saved`, `texts` and `new_ends`); False when
        it is no longer abandoned or its saved deltas changed meanwhile."""
        saved, texts, new_ends = appended
        result = await self._messages.update_one(
            {**_abandoned(now, lease), "_id": message_id, "seq": saved},
            _appending(saved, texts, new_ends, MessageStatus.INTERRUPTED, now),
        )
        return result.modified_count == 1

    async def interrupt_abandoned(self, now: datetime, lease: timedelta) -> int:
        """Unfinished replies whose instance stopped renewing their lease (it died) become
        INTERRUPTED, keeping their saved text. One never leased yet counts from its last write,
        so a reply stored a moment ago is not taken for dead."""
        result = await self._messages.update_many(
            _abandoned(now, lease),
            {"$set": {"status": MessageStatus.INTERRUPTED.value, "updated_at": now}},
        )
        return result.modified_count

    async def interrupt_unfinished(self) -> int:
        """At start-up: replies left unfinished by a process that died keep their saved text."""
        result = await self._messages.update_many(
            {"status": {"$in": UNFINISHED}},
            {"$set": {"status": MessageStatus.INTERRUPTED.value, "updated_at": utc_now()}},
        )
        return result.modified_count

    async def copy_path(
        self,
        owner_id: ObjectId,
        path: list[ObjectId],
        conversation_id: ObjectId,
        attachment_ids: Mapping[ObjectId, ObjectId],
    ) -> list[ObjectId] | None:
        """Copies of the messages of `path` (root first) as one chain in `conversation_id`,
        with new ids in the same order, their files mapped by `attachment_ids`, without usage
        or feedback (they stay the original's: rollups and exports count each once); None when
        one of them is gone. Raises `Conflict` for a reply still being written."""
        cursor = self._messages.find({"owner_id": owner_id, "_id": {"$in": path}})
        found = {doc["_id"]: doc async for doc in cursor}
        if len(found) != len(path):
            return None
        copies: list[dict[str, Any]] = []
        parent: ObjectId | None = None
        for message_id in path:
            doc = {**found[message_id], "_id": ObjectId()}
            if doc["status"] in UNFINISHED:
                raise Conflict("A reply on this branch is still being written; fork it when done.")
            doc.update(conversation_id=conversation_id, parent_id=parent)
            for field in ("client_message_id", "lease_until", "usage", "feedback"):
                doc.pop(field, None)  # usage was paid once, in the original; feedback is its
            if doc.get("attachment_ids"):
                doc["attachment_ids"] = [
                    attachment_ids[a] for a in doc["attachment_ids"] if a in attachment_ids
                ]
            copies.append(doc)
            parent = doc["_id"]
        if copies:
            await self._messages.insert_many(copies)
        return [doc["_id"] for doc in copies]

    async def set_feedback(
        self,
        owner_id: ObjectId,
        message_id: ObjectId,
        rating: FeedbackRating | None,
        comment: str | None,
    ) -> MessageRecord | None:
        """Replaces the reply's feedback (none at all when both are None). None: no such
        reply of the user's."""
        change: dict[str, Any] = (
            {"$unset": {"feedback": ""}}
            if rating is None and comment is None
            else {
                "$set": {
                    "feedback": {
                        "rating": rating.value if rating else None,
                        "comment": comment,
                        "updated_at": utc_now(),
                    }
                }
            }
        )
        doc = await self._messages.find_one_and_update(
            {"_id": message_id, "owner_id": owner_id, "role": MessageRole.ASSISTANT.value},
            change,
            projection=LIST_PROJECTION,
            return_document=ReturnDocument.AFTER,
        )
        return message_from_document(doc) if doc else None

    async def feedback_page(
        self, limit: int, older_than: ObjectId | None, rating: FeedbackRating | None
    ) -> list[MessageRecord]:
        """Replies with feedback, every user's, newest reply first (for the admins)."""
        query: dict[str, Any] = {"feedback": {"$type": "object"}}
        if rating is not None:
            query["feedback.rating"] = rating.value
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        cursor = self._messages.find(query, LIST_PROJECTION).sort("_id", DESCENDING).limit(limit)
        return [message_from_document(doc) async for doc in cursor]

    async def feedback_of_owner(self, owner_id: ObjectId) -> list[MessageRecord]:
        """The user's rated replies, oldest first (an account export)."""
        cursor = self._messages.find(
            {"owner_id": owner_id, "feedback": {"$type": "object"}}, LIST_PROJECTION
        ).sort("_id", ASCENDING)
        return [message_from_document(doc) async for doc in cursor]

    async def count_feedback(self, rating: FeedbackRating | None) -> int:
        query: dict[str, Any] = {"feedback": {"$type": "object"}}
        if rating is not None:
            query["feedback.rating"] = rating.value
        return await self._messages.count_documents(query)

    async def search(
        self, owner_id: ObjectId, text: str, limit: int, older_than: ObjectId | None
    ) -> list[MessageRecord]:
        """Messages whose text contains `text` (literally, case-insensitively), newest first,
        after the cursor's message; at most `limit`."""
        query: dict[str, Any] = {
            "owner_id": owner_id,
            "content": {"$regex": re.escape(text), "$options": "i"},
        }
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        cursor = self._messages.find(query, LIST_PROJECTION).sort("_id", DESCENDING).limit(limit)
        return [message_from_document(doc) async for doc in cursor]

    async def count_matching(self, owner_id: ObjectId, text: str) -> int:
        return await self._messages.count_documents(
            {"owner_id": owner_id, "content": {"$regex": re.escape(text), "$options": "i"}}
        )

    async def conversations_matching(self, owner_id: ObjectId, text: str) -> list[ObjectId]:
        """Conversations with a message containing `text` (literally, case-insensitively)."""
        ids = await self._messages.distinct(
            "conversation_id",
            {"owner_id": owner_id, "content": {"$regex": re.escape(text), "$options": "i"}},
        )
        return list(ids)

    async def delete_for_conversations(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> None:
        await self._messages.delete_many(
            {"owner_id": owner_id, "conversation_id": {"$in": conversation_ids}}
        )

    async def usage_documents(
        self, owner_id: ObjectId, ids: list[ObjectId]
    ) -> list[dict[str, Any]]:
        """What the usage sums read of these messages (for `UsageStore.archive`), and their
        status: no text."""
        projection = dict.fromkeys((*ARCHIVED_FIELDS, "status"), 1)
        cursor = self._messages.find({"owner_id": owner_id, "_id": {"$in": ids}}, projection)
        return [doc async for doc in cursor]

    async def delete_ids(self, owner_id: ObjectId, ids: list[ObjectId]) -> None:
        await self._messages.delete_many({"owner_id": owner_id, "_id": {"$in": ids}})

    async def delete_for_owner(self, owner_id: ObjectId) -> None:
        await self._messages.delete_many({"owner_id": owner_id})


def _abandoned(now: datetime, lease: timedelta) -> dict[str, Any]:
    """Unfinished replies whose lease ran out, or that were never leased and not written for a
    lease's time."""
    return {
        "status": {"$in": UNFINISHED},
        "$or": [
            {"lease_until": {"$lt": now}},
            {"lease_until": {"$exists": False}, "updated_at": {"$lt": now - lease}},
        ],
    }


def _appending(
    saved: int, texts: tuple[str, str], new_ends: list[int], status: MessageStatus, now: datetime
) -> list[dict[str, Any]]:
    """The update appending deltas after the `saved` ones to a reply's answer and reasoning
    (see `save_progress`); the reasoning is written only when there is some."""
    answer, reasoning = texts
    appended = {"content": answer, **({"reasoning": reasoning} if reasoning else {})}
    return [
        {
            "$set": {
                **{
                    # $literal: text starting with "$" is text, not a field path.
                    name: {"$concat": [{"$ifNull": [f"${name}", ""]}, {"$literal": text}]}
                    for name, text in appended.items()
                },
                "seq_ends": {
                    "$concatArrays": [{"$ifNull": ["$seq_ends", []]}, {"$literal": new_ends}]
                },
                "seq": saved + len(new_ends),
                "status": status.value,
                "updated_at": now,
            }
        }
    ]
