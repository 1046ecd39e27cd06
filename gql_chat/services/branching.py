"""Branches of a conversation: regenerating a reply, editing a question (each adds a sibling
and makes it the active branch; nothing is deleted), and switching between branches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from bson import ObjectId

from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRole
from gql_chat.domain.trees import leaf_after_removal, newest_leaf_under, subtree_of
from gql_chat.domain.users import UserRecord
from gql_chat.errors import BadUserInput, Conflict, NotFound
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.generation import WRITE_TIMEOUT, GenerationRunner
from gql_chat.services.messages import MESSAGE_NOT_FOUND, MessageService
from gql_chat.services.prompts import PromptService
from gql_chat.services.reply_start import ReplyStarter, SendResult
from gql_chat.services.tasks import end_tasks
from gql_chat.store.database import Database
from gql_chat.store.messages import UNFINISHED
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

ORPHAN_SWEEP_DELAY = 2 * WRITE_TIMEOUT + 1
"""Seconds after a message delete before looking again for messages a send on another instance
hung under the deleted ones (a send writes its two messages within `WRITE_TIMEOUT` each)."""


class BranchService:
    def __init__(
        self,
        conversations: ConversationService,
        messages: MessageService,
        prompts: PromptService,
        attachments: AttachmentService,
        starter: ReplyStarter,
        database: Database,
        runner: GenerationRunner,
    ) -> None:
        self._runner = runner
        self._sweeps: set[asyncio.Task[None]] = set()
        self._store = database.messages
        self._usage = database.usage
        self._attachments = attachments
        self._conversations = conversations
        self._messages = messages
        self._prompts = prompts
        self._starter = starter

    async def regenerate(self, owner: UserRecord, message_id: str, model: str | None) -> SendResult:
        """A new sibling reply to the same user message; it becomes the active branch.
        `owner`: the user as the request's sign-in check read it (`ReplyStarter.claim_slot`)."""
        return await self._starter.to_completion(self._regenerate(owner, message_id, model))

    async def _regenerate(
        self, owner: UserRecord, message_id: str, model: str | None
    ) -> SendResult:
        owner_id = owner.id
        target = await self._messages.get(owner_id, message_id)
        if target.role is not MessageRole.ASSISTANT or target.parent_id is None:
            raise BadUserInput("messageId", "Only an assistant reply can be regenerated.")
        slot = await self._starter.claim_slot(owner)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            user_message = await self._messages.get(owner_id, target.parent_id)
            resolved = await self._starter.resolve_model(slot, conversation, None, model)
            await self._starter.check_files_suit(owner_id, user_message, resolved)
            return await self._starter.reply_to(
                owner_id, conversation, user_message, resolved, slot, new=False
            )
        finally:
            self._starter.release(slot)

    async def edit(
        self,
        owner: UserRecord,
        message_id: str,
        content: str,
        attachment_ids: Sequence[str] | None = None,
    ) -> SendResult:
        """A new user message beside the edited one, plus a fresh reply. It carries the edited
        message's files unless `attachment_ids` says otherwise."""
        # Without `attachment_ids` the edited message's files decide, once it is read.
        self._starter.check_content(
            content, with_files=attachment_ids is None or len(attachment_ids) > 0
        )
        return await self._starter.to_completion(
            self._edit(owner, message_id, content, attachment_ids)
        )

    async def _edit(
        self,
        owner: UserRecord,
        message_id: str,
        content: str,
        attachment_ids: Sequence[str] | None,
    ) -> SendResult:
        owner_id = owner.id
        target = await self._messages.get(owner_id, message_id)
        if target.role is not MessageRole.USER:
            raise BadUserInput("messageId", "Only a user message can be edited.")
        if attachment_ids is None:
            attachment_ids = [str(i) for i in target.attachment_ids]
        self._starter.check_content(content, with_files=bool(attachment_ids))
        slot = await self._starter.claim_slot(owner)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            resolved = await self._starter.resolve_model(slot, conversation, None, None)
            attachments = await self._attachments.for_message(
                owner_id,
                attachment_ids,
                conversation.id,
                await self._prompts.model_info(resolved.model) if attachment_ids else None,
            )
            await self._attachments.bind(owner_id, attachments, conversation.id)
            edited = self._starter.draft_question(
                owner_id, conversation.id, content, target.parent_id, attachments=attachments
            )
            return await self._starter.reply_to(
                owner_id, conversation, edited, resolved, slot, new=True
            )
        finally:
            self._starter.release(slot)

    async def delete_message(self, owner_id: ObjectId, message_id: str) -> ConversationRecord:
        """The message and every message below it. Refused while a reply among them is being
        written. Their replies' usage is kept for the rollups (billing history is not
        rewritten); when the active branch ran through them, it moves to the nearest one left.

        No reply starts in the conversation on this instance meanwhile; a message that another
        instance's send hung under a deleted one anyway is swept at once and again a moment
        later (`ORPHAN_SWEEP_DELAY`)."""
        target = await self._messages.get(owner_id, message_id)
        conversation = await self._conversations.get(owner_id, target.conversation_id)
        with self._runner.changing_conversation(conversation.id):
            nodes = await self._store.nodes(owner_id, [conversation.id])
            removed = subtree_of(nodes, target.id)
            documents = await self._store.usage_documents(owner_id, removed)
            if any(doc["status"] in UNFINISHED for doc in documents):
                raise Conflict("A reply below this message is still being written; stop it first.")
            await self._delete(owner_id, removed, documents)
            await self._delete_orphans(owner_id, conversation.id)
            gone = set(removed)
            leaf = conversation.active_leaf_id
            if leaf is None or leaf in gone:
                remaining = [node for node in nodes if node.id not in gone]
                leaf = leaf_after_removal(remaining, target.parent_id)
            updated = await self._conversations.set_active_leaf(owner_id, conversation.id, leaf)
        if updated is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        self._later(self._delete_orphans_later(owner_id, conversation.id))
        self._conversations.publish(
            owner_id, UserEventKind.MESSAGE_DELETED, conversation.id, target.id
        )
        self._conversations.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, conversation.id)
        return updated

    async def close(self) -> None:
        """At shutdown: the pending second sweeps are dropped (the next delete sweeps again)."""
        await end_tasks(self._sweeps, "branch sweeps")

    async def _delete(
        self,
        owner_id: ObjectId,
        ids: list[ObjectId],
        documents: list[dict[str, Any]] | None = None,
    ) -> None:
        """Their replies' usage kept first (`documents`: already read for these ids)."""
        if documents is None:
            documents = await self._store.usage_documents(owner_id, ids)
        await self._usage.archive(documents)
        await self._store.delete_ids(owner_id, ids)

    async def _delete_orphans(self, owner_id: ObjectId, conversation_id: ObjectId) -> None:
        """Messages whose parent is gone, with everything below them."""
        nodes = await self._store.nodes(owner_id, [conversation_id])
        present = {node.id for node in nodes}
        orphans = [n.id for n in nodes if n.parent_id is not None and n.parent_id not in present]
        if orphans:
            await self._delete(
                owner_id, [i for orphan in orphans for i in subtree_of(nodes, orphan)]
            )

    async def _delete_orphans_later(self, owner_id: ObjectId, conversation_id: ObjectId) -> None:
        await asyncio.sleep(ORPHAN_SWEEP_DELAY)
        try:
            await self._delete_orphans(owner_id, conversation_id)
        except Exception:
            logger.warning("the second orphan sweep after a message delete failed", exc_info=True)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def switch_branch(self, owner_id: ObjectId, message_id: str) -> ConversationRecord:
        """The newest leaf under the message becomes the active leaf."""
        target = await self._messages.get(owner_id, message_id)
        nodes = await self._messages.nodes(owner_id, [target.conversation_id])
        leaf = newest_leaf_under(nodes, target.id)
        updated = await self._conversations.set_active_leaf(owner_id, target.conversation_id, leaf)
        if updated is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        return updated
