"""Reading a user's messages: one message, a page of the active path (cursor maths with exact
`hasNextPage`/`hasPreviousPage`), the tree shapes and usage totals a list of conversations
batches; and stopping a reply."""

from __future__ import annotations

import asyncio

from bson import ObjectId

from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import (
    FeedbackRating,
    MessageNode,
    MessageRecord,
    MessageRole,
    MessageStatus,
    UsageRecord,
)
from gql_chat.domain.pages import Page
from gql_chat.domain.trees import newest_leaf_under, path_to
from gql_chat.errors import BadUserInput, NotFound
from gql_chat.services.cluster import Cluster
from gql_chat.services.generation import GenerationRunner
from gql_chat.services.pagination import check_direction, page_size
from gql_chat.services.validation import check_prose
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.database import Database

MESSAGE_NOT_FOUND = "Message not found."
MAX_FEEDBACK_COMMENT = 2000
REMOTE_STOP_WAIT = 3.0
"""How long `stop` waits for the instance generating a reply to store its final state."""
REMOTE_STOP_POLL = 0.05


class MessageService:
    def __init__(self, database: Database, runner: GenerationRunner, cluster: Cluster) -> None:
        self._cluster = cluster
        self._messages = database.messages
        self._usage = database.usage
        self._runner = runner

    async def get(self, owner_id: ObjectId, message_id: str | ObjectId) -> MessageRecord:
        oid = parse_object_id(message_id)
        message = await self._messages.get(owner_id, oid) if oid else None
        if message is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        return message

    async def rate(
        self,
        owner_id: ObjectId,
        message_id: str,
        rating: FeedbackRating | None,
        comment: str | None,
    ) -> MessageRecord:
        """The user's feedback on a reply, replacing any before (nothing at all clears it)."""
        if comment is not None:
            if len(comment) > MAX_FEEDBACK_COMMENT:
                raise BadUserInput(
                    "comment", f"comment must be at most {MAX_FEEDBACK_COMMENT} characters."
                )
            comment = check_prose(comment, "comment", "comment").strip() or None
        target = await self.get(owner_id, message_id)
        if target.role is not MessageRole.ASSISTANT:
            raise BadUserInput("messageId", "Only an assistant reply can be rated.")
        rated = await self._messages.set_feedback(owner_id, target.id, rating, comment)
        if rated is None:  # deleted meanwhile
            raise NotFound(MESSAGE_NOT_FOUND)
        return rated

    @staticmethod
    def branch(
        nodes: list[MessageNode], active_leaf_id: ObjectId | None, through: str | None
    ) -> list[ObjectId]:
        """The conversation's active path, or the path through the message `through` down to
        its newest leaf (NOT_FOUND when it is not one of `nodes`)."""
        if through is None:
            return path_to(nodes, active_leaf_id)
        message_id = parse_object_id(through)
        if message_id is None or all(node.id != message_id for node in nodes):
            raise NotFound(MESSAGE_NOT_FOUND)
        return path_to(nodes, newest_leaf_under(nodes, message_id))

    async def stop(self, owner_id: ObjectId, message_id: str) -> MessageRecord:
        """Idempotent: a finished message comes back unchanged."""
        message = await self.get(owner_id, message_id)
        if message.status.is_final:
            return message
        if await self._runner.stop(message.id):
            return await self.get(owner_id, message.id)
        if self._cluster.shared:
            # Another instance may be generating it: it stops at once (closing the upstream
            # request) and stores its final state; wait for that a moment.
            self._cluster.stop_elsewhere(message.id, MessageStatus.STOPPED)
            final = await self._final_within(owner_id, message.id, REMOTE_STOP_WAIT)
            if final is not None:
                return final
        # Nobody generates it (the process that did died): it ends here.
        await self._messages.finish(message.id, {"status": MessageStatus.STOPPED.value})
        return await self.get(owner_id, message.id)

    async def _final_within(
        self, owner_id: ObjectId, message_id: ObjectId, seconds: float
    ) -> MessageRecord | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await asyncio.sleep(REMOTE_STOP_POLL)
            message = await self.get(owner_id, message_id)
            if message.status.is_final:
                return message
        return None

    async def interrupt(self, message_id: ObjectId) -> None:
        """Mark a reply whose process is gone as ended (its text so far is kept)."""
        await self._messages.finish(message_id, {"status": MessageStatus.INTERRUPTED.value})

    async def page(
        self,
        owner_id: ObjectId,
        path: list[ObjectId],
        *,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> Page[MessageRecord]:
        """Pages over the active path by message id: exact `hasNextPage`/`hasPreviousPage`."""
        check_direction(first, last)
        start, end = 0, len(path)
        if after is not None:
            start = _path_index(path, after, "after") + 1
        if before is not None:
            end = _path_index(path, before, "before")
        if first is None and last is None:
            first = page_size(None)
        if first is not None:
            end = min(end, start + page_size(first, "first"))
        if last is not None:
            start = max(start, end - page_size(last, "last"))
        window = path[start:end] if start < end else []
        return Page(
            items=[
                (encode_cursor({"m": str(m.id)}), m)
                for m in await self._messages.get_many(owner_id, window)
            ],
            has_next_page=end < len(path),
            has_previous_page=start > 0,
            total_count=len(path),
        )

    async def nodes(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> list[MessageNode]:
        """Every message of the conversations, oldest first, without text."""
        return await self._messages.nodes(owner_id, conversation_ids)

    async def usage_totals(
        self, owner_id: ObjectId, conversation_ids: list[ObjectId]
    ) -> dict[ObjectId, UsageRecord]:
        """Usage of each conversation's assistant replies; absent when it has none."""
        return await self._usage.totals(owner_id, conversation_ids)


def _path_index(path: list[ObjectId], cursor: str, field: str) -> int:
    message_id = parse_object_id(str(decode_cursor(cursor, field).get("m")))
    if message_id is None or message_id not in path:
        raise BadUserInput(field, "Invalid cursor.")
    return path.index(message_id)
