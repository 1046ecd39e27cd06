"""Sending a message: at most once per `clientMessageId`, whole or not at all.

A retried send (same key) gets the first one's answer, whether that one is still in flight here,
stored, or stored by another instance; a user message whose reply was never stored gets its
reply on the retry, so a retry never hits a dead end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from bson import ObjectId

from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.characters import forbidden_character
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRecord
from gql_chat.domain.presets import ReasoningEffort
from gql_chat.domain.users import UserRecord
from gql_chat.errors import AlreadyExists, BadUserInput, NotFound
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.generation import WRITE_TIMEOUT
from gql_chat.services.prompts import PromptService
from gql_chat.services.reply_start import ReplyStarter, SendResult
from gql_chat.services.titles import title_from
from gql_chat.store.database import Database

logger = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE_ID = 200
REPLY_KEY_SEPARATOR = "\x1f"
"""Between a send's `clientMessageId` and "reply" in the key its first reply is stored under:
no client key contains it, and the unique key index lets only one reply to that send exist."""


def reply_key_for(client_message_id: str | None) -> str | None:
    if client_message_id is None:
        return None
    return f"{client_message_id}{REPLY_KEY_SEPARATOR}reply"


class SendService:
    def __init__(
        self,
        database: Database,
        conversations: ConversationService,
        prompts: PromptService,
        attachments: AttachmentService,
        starter: ReplyStarter,
    ) -> None:
        self._attachments = attachments
        self._messages = database.messages
        self._conversations = conversations
        self._prompts = prompts
        self._starter = starter
        self._in_flight: dict[tuple[ObjectId, str], asyncio.Task[SendResult]] = {}

    async def send_message(
        self,
        owner: UserRecord,
        *,
        content: str,
        conversation_id: str | None = None,
        folder_id: str | None = None,
        llm_config_id: str | None = None,
        model: str | None = None,
        reasoning_effort: ReasoningEffort | None = None,
        client_message_id: str | None = None,
        attachment_ids: Sequence[str] = (),
    ) -> SendResult:
        """Validates at once; the rest runs to its end even if the caller goes away (a
        cancelled websocket operation), so a send is stored whole or not at all. `owner` is the
        user as this request's sign-in check read it: admission uses that read rather than a
        second one (a round trip before the request leaves for the model)."""
        owner_id = owner.id
        self._starter.check_content(content, with_files=bool(attachment_ids))
        if client_message_id is not None:
            _check_client_message_id(client_message_id)
            earlier = self._in_flight.get((owner_id, client_message_id))
            if earlier is not None:  # a send with this key is in flight here: its answer
                with contextlib.suppress(Exception):
                    return await asyncio.shield(earlier)
        task = self._starter.start(
            self._send(
                owner,
                content=content,
                conversation_id=conversation_id,
                folder_id=folder_id,
                llm_config_id=llm_config_id,
                model=model,
                reasoning_effort=reasoning_effort,
                client_message_id=client_message_id,
                attachment_ids=attachment_ids,
            )
        )
        if client_message_id is not None:
            key = (owner_id, client_message_id)
            self._in_flight[key] = task

            def forget(finished: asyncio.Task[SendResult]) -> None:
                if self._in_flight.get(key) is finished:
                    del self._in_flight[key]

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _send(
        self,
        owner: UserRecord,
        *,
        content: str,
        conversation_id: str | None,
        folder_id: str | None,
        llm_config_id: str | None,
        model: str | None,
        reasoning_effort: ReasoningEffort | None,
        client_message_id: str | None,
        attachment_ids: Sequence[str],
    ) -> SendResult:
        owner_id = owner.id
        if client_message_id is not None:
            existing = await self._messages.find_by_client_id(owner_id, client_message_id)
            if existing is not None:
                return await self._result_for(owner, existing)
        slot = await self._starter.claim_slot(owner)
        try:
            # Everything that can refuse the send runs before the conversation is opened.
            existing_conversation, read_ahead = (
                await self._starter.read_conversation(owner_id, conversation_id)
                if conversation_id is not None
                else (None, None)
            )
            resolved = await self._starter.resolve_model(
                slot, existing_conversation, llm_config_id, model, reasoning_effort
            )
            attachments = await self._attachments.for_message(
                owner_id,
                attachment_ids,
                existing_conversation.id if existing_conversation else None,
                await self._prompts.model_info(resolved.model) if attachment_ids else None,
            )
            conversation = existing_conversation or await self._conversations.create(
                owner_id,
                title=title_from(content),
                folder_id=folder_id,
                title_source="first_words",
                check_owner=False,
            )
            try:
                await self._attachments.bind(owner_id, attachments, conversation.id)
                user_message = self._starter.draft_question(
                    owner_id,
                    conversation.id,
                    content,
                    conversation.active_leaf_id,
                    client_message_id,
                    attachments,
                )
                return await self._starter.reply_to(
                    owner_id,
                    conversation,
                    user_message,
                    resolved,
                    slot,
                    new=True,
                    reply_key=reply_key_for(client_message_id),
                    read_ahead=read_ahead,
                )
            except AlreadyExists:
                # Another send with this key (on another instance) stored first: answer with
                # its result. (Or a retry repaired this send's missing reply: the same.)
                if client_message_id is None:
                    raise
                existing = await self._messages.find_by_client_id(owner_id, client_message_id)
                if existing is None:
                    raise
                if conversation_id is None and existing.conversation_id != conversation.id:
                    await self._drop_conversation(owner_id, conversation.id, attachments)
                return await self._result_for(owner, existing)
            except BaseException:
                # Refused (the conversation or the user went away meanwhile, a bad preset), or
                # failed or out of time: nothing of the send is left, not even the conversation
                # it opened (deleting it stops the reply and deletes its messages).
                if conversation_id is None:
                    await self._drop_conversation(owner_id, conversation.id, attachments)
                raise
        finally:
            self._starter.release(slot)

    async def _drop_conversation(
        self,
        owner_id: ObjectId,
        conversation_id: ObjectId,
        attachments: Sequence[AttachmentRecord],
    ) -> None:
        """Best effort, bounded: a conversation a failed send opened. Its files are unsent
        uploads again first (deleting the conversation would delete them), for a retry."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._attachments.unbind(owner_id, attachments, conversation_id)
                await self._conversations.delete(owner_id, conversation_id)
        except NotFound:
            pass  # gone already (its user was deleted)
        except Exception:
            logger.warning("could not delete the conversation of a failed send", exc_info=True)

    async def _result_for(self, owner: UserRecord, user_message: MessageRecord) -> SendResult:
        """The stored pair of an earlier send with the same key. A user message stored without
        its reply (the reply's write failed) gets its reply now, and the reply's own key makes
        two concurrent repairs store one reply."""
        conversation = await self._conversations.get(owner.id, user_message.conversation_id)
        reply = await self._messages.first_child(owner.id, user_message.id)
        if reply is None:
            return await self._repair(owner, conversation, user_message)
        return SendResult(
            conversation=conversation, user_message=user_message, assistant_message=reply
        )

    async def _repair(
        self, owner: UserRecord, conversation: ConversationRecord, user_message: MessageRecord
    ) -> SendResult:
        owner_id = owner.id
        slot = await self._starter.claim_slot(owner)
        try:
            resolved = await self._starter.resolve_model(slot, conversation, None, None)
            return await self._starter.reply_to(
                owner_id,
                conversation,
                user_message,
                resolved,
                slot,
                new=False,
                reply_key=reply_key_for(user_message.client_message_id),
            )
        except AlreadyExists:  # a concurrent repair (or the first send) stored it first
            reply = await self._messages.first_child(owner_id, user_message.id)
            if reply is None:
                raise
            return SendResult(
                conversation=conversation, user_message=user_message, assistant_message=reply
            )
        finally:
            self._starter.release(slot)


def _check_client_message_id(client_message_id: str) -> None:
    if not 1 <= len(client_message_id) <= MAX_CLIENT_MESSAGE_ID:
        raise BadUserInput(
            "clientMessageId",
            f"clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID} characters.",
        )
    if forbidden_character(client_message_id) is not None:
        raise BadUserInput(
            "clientMessageId", "clientMessageId must not contain control characters."
        )
