"""Continuing a reply that its length limit cut off, or that was stopped or interrupted: in
place, the same message growing and its `seq` numbers going on, so a client that follows it
just keeps appending."""

from __future__ import annotations

from gql_chat.domain.users import UserRecord
from gql_chat.errors import BadUserInput, Conflict
from gql_chat.services.conversations import ConversationService
from gql_chat.services.messages import MessageService
from gql_chat.services.reply_start import ReplyStarter, SendResult

NOT_CONTINUABLE = (
    'Only a reply cut off by its length limit (finishReason "length"), stopped or '
    "interrupted can be continued."
)


class ContinuationService:
    def __init__(
        self,
        conversations: ConversationService,
        messages: MessageService,
        starter: ReplyStarter,
    ) -> None:
        self._conversations = conversations
        self._messages = messages
        self._starter = starter

    async def continue_reply(self, owner: UserRecord, message_id: str) -> SendResult:
        """The reply goes on with the model it was written by (the conversation's preset
        settings otherwise); its usage and time add up. `owner`: the user as the request's
        sign-in check read it (`ReplyStarter.claim_slot`)."""
        return await self._starter.to_completion(self._continue(owner, message_id))

    async def _continue(self, owner: UserRecord, message_id: str) -> SendResult:
        owner_id = owner.id
        reply = await self._messages.get(owner_id, message_id)
        if not reply.status.is_final:
            raise Conflict("The reply is still being written.")
        if not reply.can_continue or reply.parent_id is None:
            raise BadUserInput("messageId", NOT_CONTINUABLE)
        slot = await self._starter.claim_slot(owner)
        try:
            conversation = await self._conversations.get(owner_id, reply.conversation_id)
            question = await self._messages.get(owner_id, reply.parent_id)
            resolved = await self._starter.resolve_model(slot, conversation, None, reply.model)
            await self._starter.check_files_suit(owner_id, question, resolved)
            return await self._starter.continue_reply(
                owner_id, conversation, question, reply, resolved, slot
            )
        finally:
            self._starter.release(slot)
