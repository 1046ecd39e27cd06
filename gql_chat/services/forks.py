"""Forking a conversation: a new conversation holding the path up to a message, in the same
folder and with the same preset, so a user can take a chat in another direction and keep both.

The copies are whole (text, reasoning, usage, status, their files' bytes too: every file
belongs to one conversation, so the fork's must not vanish with the original's). A fork is
whole or nothing: a failure halfway deletes what was made."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.trees import path_to
from gql_chat.errors import LimitReached, NotFound
from gql_chat.services.conversations import TITLE_LENGTH, ConversationService
from gql_chat.services.generation import WRITE_TIMEOUT
from gql_chat.services.messages import MESSAGE_NOT_FOUND, MessageService
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

FORK_SUFFIX = " (fork)"


class ForkService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        conversations: ConversationService,
        messages: MessageService,
    ) -> None:
        self._quota = settings.user_storage_bytes
        self._db = database
        self._conversations = conversations
        self._messages = messages

    async def fork(self, owner_id: ObjectId, message_id: str) -> ConversationRecord:
        target = await self._messages.get(owner_id, message_id)
        source = await self._conversations.get(owner_id, target.conversation_id)
        path = path_to(await self._db.messages.nodes(owner_id, [source.id]), target.id)
        title = source.title[: TITLE_LENGTH[1] - len(FORK_SUFFIX)] + FORK_SUFFIX
        fork = await self._conversations.create(
            owner_id,
            title=title,
            folder_id=str(source.folder_id) if source.folder_id else None,
            llm_config_id=str(source.llm_config_id) if source.llm_config_id else None,
        )
        try:
            records = await self._db.messages.get_many(owner_id, path)
            attachments = [a for record in records for a in record.attachment_ids]
            copies = await self._db.attachments.copy_to(owner_id, attachments, fork.id)
            if attachments and await self._db.attachments.used_bytes(owner_id) > self._quota:
                raise LimitReached(
                    "The fork's copies of its files would not fit in your storage.", self._quota
                )
            copied = await self._db.messages.copy_path(owner_id, path, fork.id, copies)
            if copied is None:
                raise NotFound(MESSAGE_NOT_FOUND)  # deleted meanwhile
            updated = await self._conversations.set_active_leaf(
                owner_id, fork.id, copied[-1] if copied else None
            )
            if updated is None:  # the new conversation was deleted meanwhile
                raise NotFound("Conversation not found.")
        except BaseException:
            await asyncio.shield(self._drop(owner_id, fork.id))
            raise
        self._conversations.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, fork.id)
        return updated

    async def _drop(self, owner_id: ObjectId, conversation_id: ObjectId) -> None:
        """Best effort, bounded: the half-made fork, with its copies."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                with contextlib.suppress(NotFound):
                    await self._conversations.delete(owner_id, conversation_id)
        except Exception:
            logger.warning("could not delete a failed fork", exc_info=True)
