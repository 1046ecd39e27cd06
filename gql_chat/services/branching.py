"""Branches of a conversation: regenerating a reply, editing a question (each adds a sibling
and makes it the active branch; nothing is deleted), and switching between branches."""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRole
from gql_chat.domain.trees import newest_leaf_under
from gql_chat.errors import BadUserInput, NotFound
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.messages import MESSAGE_NOT_FOUND, MessageService
from gql_chat.services.prompts import PromptService
from gql_chat.services.reply_start import ReplyStarter, SendResult


class BranchService:
    def __init__(
        self,
        conversations: ConversationService,
        messages: MessageService,
        prompts: PromptService,
        attachments: AttachmentService,
        starter: ReplyStarter,
    ) -> None:
        self._attachments = attachments
        self._conversations = conversations
        self._messages = messages
        self._prompts = prompts
        self._starter = starter

    async def regenerate(
        self, owner_id: ObjectId, message_id: str, model: str | None
    ) -> SendResult:
        """A new sibling reply to the same user message; it becomes the active branch."""
        return await self._starter.to_completion(self._regenerate(owner_id, message_id, model))

    async def _regenerate(
        self, owner_id: ObjectId, message_id: str, model: str | None
    ) -> SendResult:
        target = await self._messages.get(owner_id, message_id)
        if target.role is not MessageRole.ASSISTANT or target.parent_id is None:
            raise BadUserInput("messageId", "Only an assistant reply can be regenerated.")
        slot = await self._starter.claim_slot(owner_id)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            user_message = await self._messages.get(owner_id, target.parent_id)
            resolved = await self._prompts.resolve_model(owner_id, conversation, None, model)
            if user_message.attachment_ids:  # the model chosen now must take its files
                await self._attachments.for_message(
                    owner_id,
                    [str(i) for i in user_message.attachment_ids],
                    conversation.id,
                    await self._prompts.model_info(resolved.model),
                )
            return await self._starter.reply_to(
                owner_id, conversation, user_message, resolved, slot, new=False
            )
        finally:
            self._starter.release(slot)

    async def edit(
        self,
        owner_id: ObjectId,
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
            self._edit(owner_id, message_id, content, attachment_ids)
        )

    async def _edit(
        self,
        owner_id: ObjectId,
        message_id: str,
        content: str,
        attachment_ids: Sequence[str] | None,
    ) -> SendResult:
        target = await self._messages.get(owner_id, message_id)
        if target.role is not MessageRole.USER:
            raise BadUserInput("messageId", "Only a user message can be edited.")
        if attachment_ids is None:
            attachment_ids = [str(i) for i in target.attachment_ids]
        self._starter.check_content(content, with_files=bool(attachment_ids))
        slot = await self._starter.claim_slot(owner_id)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            resolved = await self._prompts.resolve_model(owner_id, conversation, None, None)
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

    async def switch_branch(self, owner_id: ObjectId, message_id: str) -> ConversationRecord:
        """The newest leaf under the message becomes the active leaf."""
        target = await self._messages.get(owner_id, message_id)
        nodes = await self._messages.nodes(owner_id, [target.conversation_id])
        leaf = newest_leaf_under(nodes, target.id)
        updated = await self._conversations.set_active_leaf(owner_id, target.conversation_id, leaf)
        if updated is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        return updated
