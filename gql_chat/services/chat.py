"""Chat: sending messages, stopping replies, reading threads, and following reply streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gql_chat.config import Settings
from gql_chat.errors import BadUserInput, NotFound, RateLimited
from gql_chat.llm.offline import OFFLINE_MODEL_ID
from gql_chat.llm.tokens import trim_to_budget
from gql_chat.llm.types import ChatProvider, ChatRequest, ModelInfo, PromptMessage
from gql_chat.services.conversations import ConversationService
from gql_chat.services.generation import (
    STOP_TIMEOUT,
    WRITE_TIMEOUT,
    GenerationJob,
    GenerationRunner,
)
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.threads import newest_leaf_under, path_to
from gql_chat.services.titles import title_from
from gql_chat.services.validation import check_prose, check_text, forbidden_character
from gql_chat.store.clock import utc_now
from gql_chat.store.conversations import ConversationRecord
from gql_chat.store.database import Database
from gql_chat.store.ids import parse_object_id
from gql_chat.store.llm_configs import LlmConfigRecord
from gql_chat.store.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.store.pagination import Page, decode_cursor, encode_cursor, page_size
from gql_chat.streams.replies import ReplyRegistry
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

MESSAGE_NOT_FOUND = "Message not found."
MAX_CLIENT_MESSAGE_ID = 200
STORE_POLL_INTERVAL = 0.5
UPSTREAM_HEAD_START = 0.05
"""How long sendMessage lets the model request go out before its own bookkeeping: the model
starts on the first token while we write, rather than after."""
PROMPT_ROLES = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}


@dataclass(frozen=True, slots=True)
class SendResult:
    conversation: ConversationRecord
    user_message: MessageRecord
    assistant_message: MessageRecord


@dataclass(frozen=True, slots=True)
class StreamEvent:
    message_id: ObjectId
    seq: int
    delta: str
    status: MessageStatus
    done: bool = False
    message: MessageRecord | None = None


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    model: str
    preset: LlmConfigRecord | None


class ChatService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        conversations: ConversationService,
        presets: LlmConfigService,
        provider: ChatProvider,
        runner: GenerationRunner,
        registry: ReplyRegistry[MessageRecord],
        rate_limits: RateLimits,
    ) -> None:
        self._limits = rate_limits
        self._settings = settings
        self._db = database
        self._messages = database.messages
        self._conversations = conversations
        self._presets = presets
        self._provider = provider
        self._runner = runner
        self._registry = registry

    # --- sending -------------------------------------------------------------------------

    async def send_message(
        self,
        owner_id: ObjectId,
        *,
        content: str,
        conversation_id: str | None = None,
        folder_id: str | None = None,
        llm_config_id: str | None = None,
        model: str | None = None,
        client_message_id: str | None = None,
    ) -> SendResult:
        self._check_content(content)
        if client_message_id is not None:
            if not 1 <= len(client_message_id) <= MAX_CLIENT_MESSAGE_ID:
                raise BadUserInput(
                    "clientMessageId",
                    f"clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID} characters.",
                )
            if forbidden_character(client_message_id) is not None:
                raise BadUserInput(
                    "clientMessageId", "clientMessageId must not contain control characters."
                )
            existing = await self._messages.find_by_client_id(owner_id, client_message_id)
            if existing is not None:
                return await self._result_for(owner_id, existing)
        await self._check_capacity(owner_id)

        if conversation_id is not None:
            conversation = await self._conversations.get(owner_id, conversation_id)
        else:
            conversation = await self._conversations.create(
                owner_id, title=title_from(content), folder_id=folder_id, title_source="first_words"
            )
        resolved = await self._resolve_model(owner_id, conversation, llm_config_id, model)
        user_message = self._draft_question(
            owner_id, conversation.id, content, conversation.active_leaf_id, client_message_id
        )
        try:
            return await self._reply_to(owner_id, conversation, user_message, resolved, new=True)
        except DuplicateKeyError:
            if client_message_id is None:
                raise
            # A concurrent retry with the same key won the race (its reply was abandoned before
            # anything was written): answer with the winner's result.
            if conversation_id is None:
                await self._conversations.delete(owner_id, conversation.id)
            existing = await self._messages.find_by_client_id(owner_id, client_message_id)
            assert existing is not None
            return await self._result_for(owner_id, existing)

    def _draft_question(
        self,
        owner_id: ObjectId,
        conversation_id: ObjectId,
        content: str,
        parent_id: ObjectId | None,
        client_message_id: str | None = None,
    ) -> MessageRecord:
        """A user message, complete from the start, not yet stored (`_reply_to` stores it)."""
        return self._messages.draft(
            owner_id,
            conversation_id,
            role=MessageRole.USER,
            content=content,
            status=MessageStatus.COMPLETE,
            parent_id=parent_id,
            client_message_id=client_message_id,
        )

    async def _reply_to(
        self,
        owner_id: ObjectId,
        conversation: ConversationRecord,
        user_message: MessageRecord,
        resolved: ResolvedModel,
        *,
        new: bool,
    ) -> SendResult:
        """Start the reply, then store it (and `user_message` when `new`), then do the
        conversation's bookkeeping: the request leaves for the model after the reads it needs and
        before any write, so the provider works on the first token while we write. Should a write
        fail, the reply is abandoned without writing anything."""
        thread = (
            await self._messages.thread(owner_id, conversation.id)
            if user_message.parent_id is not None
            else []
        )
        texts = {turn.id: (turn.role, turn.content) for turn in thread}
        turns = [texts[i] for i in path_to(thread, user_message.parent_id)]
        turns.append((user_message.role, user_message.content))
        request = self._build_request(turns, resolved)
        assistant = self._messages.draft(
            owner_id,
            conversation.id,
            role=MessageRole.ASSISTANT,
            content="",
            status=MessageStatus.PENDING,
            parent_id=user_message.id,
            model=resolved.model,
        )
        created = [user_message, assistant] if new else [assistant]
        generation = self._runner.start(
            GenerationJob(
                message_id=assistant.id,
                owner_id=owner_id,
                conversation_id=conversation.id,
                request=request,
            )
        )
        try:
            with contextlib.suppress(TimeoutError):  # a slow connection must not hold the answer
                async with asyncio.timeout(UPSTREAM_HEAD_START):
                    await generation.sent.wait()
            async with asyncio.timeout(WRITE_TIMEOUT * len(created)):
                for message in created:
                    await self._messages.add(message)
        except BaseException:
            self._runner.abandon(assistant.id)
            raise
        if not generation.confirm():  # pragma: no cover - only a stalled event loop gets here
            await self._messages.finish(assistant.id, {"status": MessageStatus.INTERRUPTED.value})
        for message in created:
            self._conversations.publish(
                owner_id, UserEventKind.MESSAGE_CREATED, conversation.id, message.id
            )
        now = utc_now()
        updated = await self._db.conversations.update(
            owner_id,
            conversation.id,
            {"active_leaf_id": assistant.id, "last_message_at": now, "activity_at": now},
        )
        self._conversations.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, conversation.id)
        return SendResult(
            conversation=updated or conversation,
            user_message=user_message,
            assistant_message=assistant,
        )

    async def regenerate(
        self, owner_id: ObjectId, message_id: str, model: str | None
    ) -> SendResult:
        """A new sibling reply to the same user message; it becomes the active branch."""
        target = await self.get_message(owner_id, message_id)
        if target.role is not MessageRole.ASSISTANT or target.parent_id is None:
            raise BadUserInput("messageId", "Only an assistant reply can be regenerated.")
        await self._check_capacity(owner_id)
        conversation = await self._conversations.get(owner_id, target.conversation_id)
        user_message = await self.get_message(owner_id, target.parent_id)
        resolved = await self._resolve_model(owner_id, conversation, None, model)
        return await self._reply_to(owner_id, conversation, user_message, resolved, new=False)

    async def edit(self, owner_id: ObjectId, message_id: str, content: str) -> SendResult:
        """A new user message beside the edited one, plus a fresh reply; nothing is deleted."""
        self._check_content(content)
        target = await self.get_message(owner_id, message_id)
        if target.role is not MessageRole.USER:
            raise BadUserInput("messageId", "Only a user message can be edited.")
        await self._check_capacity(owner_id)
        conversation = await self._conversations.get(owner_id, target.conversation_id)
        resolved = await self._resolve_model(owner_id, conversation, None, None)
        edited = self._draft_question(owner_id, conversation.id, content, target.parent_id)
        return await self._reply_to(owner_id, conversation, edited, resolved, new=True)

    async def switch_branch(self, owner_id: ObjectId, message_id: str) -> ConversationRecord:
        """The newest leaf under the message becomes the active leaf."""
        target = await self.get_message(owner_id, message_id)
        nodes = await self._messages.nodes(owner_id, [target.conversation_id])
        leaf = newest_leaf_under(nodes, target.id)
        updated = await self._db.conversations.update(
            owner_id, target.conversation_id, {"active_leaf_id": leaf}
        )
        if updated is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        self._conversations.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, updated.id)
        return updated

    async def _result_for(self, owner_id: ObjectId, user_message: MessageRecord) -> SendResult:
        conversation = await self._conversations.get(owner_id, user_message.conversation_id)
        reply = await self._messages.first_child(owner_id, user_message.id)
        if reply is None:  # pragma: no cover - the reply is stored right after the user message
            raise NotFound(MESSAGE_NOT_FOUND)
        return SendResult(
            conversation=conversation, user_message=user_message, assistant_message=reply
        )

    def _check_content(self, content: str) -> None:
        limit = self._settings.max_message_chars
        if not content.strip() or len(content) > limit:
            raise BadUserInput("content", f"A message must be 1 to {limit} characters.")
        check_prose(content, "content", "A message")

    async def _check_capacity(self, owner_id: ObjectId) -> None:
        """Replies started per minute, and replies in flight at once."""
        await self._limits.hit(self._limits.send_per_user, "send", str(owner_id))
        limit = self._settings.max_concurrent_generations
        if self._runner.active_count(owner_id) >= limit:
            raise RateLimited(
                retry_after=1, message=f"At most {limit} replies can be generated at once."
            )

    async def _resolve_model(
        self,
        owner_id: ObjectId,
        conversation: ConversationRecord,
        llm_config_id: str | None,
        model_override: str | None,
    ) -> ResolvedModel:
        """Input preset, then the conversation's, then the user's default, then the setting."""
        preset: LlmConfigRecord | None = None
        if llm_config_id is not None:
            preset = await self._presets.get(owner_id, llm_config_id)
        elif conversation.llm_config_id is not None:
            preset = await self._db.llm_configs.get(owner_id, conversation.llm_config_id)
        if preset is None and llm_config_id is None:
            preset = await self._presets.default_for(owner_id)
        if model_override is not None:
            model_override = check_text(model_override, "model", 1, 200, "model")
        model = model_override or (preset.model if preset else None)
        if self._settings.uses_offline_model:
            model = OFFLINE_MODEL_ID
        return ResolvedModel(model=model or self._settings.default_model, preset=preset)

    def _build_request(
        self, turns: list[tuple[MessageRole, str]], resolved: ResolvedModel
    ) -> ChatRequest:
        """The preset's system prompt plus the conversation's turns, trimmed oldest first."""
        history = [
            PromptMessage(role=PROMPT_ROLES[role], content=content)
            for role, content in turns
            if role in PROMPT_ROLES and content
        ]
        preset = resolved.preset
        system = (
            PromptMessage(role="system", content=preset.system_prompt)
            if preset and preset.system_prompt
            else None
        )
        return ChatRequest(
            model=resolved.model,
            messages=trim_to_budget(system, history, self._settings.prompt_token_budget),
            temperature=preset.temperature if preset else None,
            top_p=preset.top_p if preset else None,
            max_tokens=preset.max_tokens if preset else None,
        )

    # --- stopping and reading ------------------------------------------------------------

    async def get_message(self, owner_id: ObjectId, message_id: str | ObjectId) -> MessageRecord:
        oid = parse_object_id(message_id)
        message = await self._messages.get(owner_id, oid) if oid else None
        if message is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        return message

    async def stop(self, owner_id: ObjectId, message_id: str) -> MessageRecord:
        """Idempotent: a finished message comes back unchanged."""
        message = await self.get_message(owner_id, message_id)
        if message.status.is_final:
            return message
        if not await self._runner.stop(message.id):
            # Not generated by this process (its owner died or is another instance).
            await self._messages.finish(message.id, {"status": MessageStatus.STOPPED.value})
        return await self.get_message(owner_id, message.id)

    async def list_models(self) -> list[ModelInfo]:
        return await self._provider.list_models()

    async def message_page(
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
        start, end = 0, len(path)
        if after is not None:
            start = self._path_index(path, after, "after") + 1
        if before is not None:
            end = self._path_index(path, before, "before")
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

    @staticmethod
    def _path_index(path: list[ObjectId], cursor: str, field: str) -> int:
        message_id = parse_object_id(str(decode_cursor(cursor, field).get("m")))
        if message_id is None or message_id not in path:
            raise BadUserInput(field, "Invalid cursor.")
        return path.index(message_id)

    # --- following ----------------------------------------------------------------------

    async def stream(
        self, owner_id: ObjectId, message_id: str, after_seq: int
    ) -> AsyncIterator[StreamEvent]:
        """Replay after `after_seq`, then follow live, then one `done` event: no gap, no repeat.

        A reply generated here is followed from its live buffer, which holds every delta since
        it started (so replay and follow cannot race). Otherwise the stored message is replayed
        and, while unfinished (another instance owns it), re-read until it is final."""
        message = await self.get_message(owner_id, message_id)
        last_seq = max(after_seq, 0)
        live = self._registry.get(message.id)
        if live is not None:
            async for delta in live.follow(last_seq):
                last_seq = delta.seq
                yield StreamEvent(message.id, delta.seq, delta.text, MessageStatus.STREAMING)
            if live.final is not None:
                yield self._done(live.final)
                return
            message = await self.get_message(owner_id, message.id)
        while True:
            for seq, text in message.deltas_after(last_seq):
                last_seq = seq
                yield StreamEvent(message.id, seq, text, message.status)
            if message.status.is_final:
                yield self._done(message)
                return
            if utc_now() > self._orphaned_after(message):
                await self._messages.finish(message.id, {"status": MessageStatus.INTERRUPTED.value})
            else:
                await asyncio.sleep(STORE_POLL_INTERVAL)
            message = await self.get_message(owner_id, message.id)

    def _orphaned_after(self, message: MessageRecord) -> datetime:
        """No reply runs longer than `max_reply_seconds` plus its final write: one unfinished
        after that lost its process, and followers must not wait for it forever."""
        bound = self._settings.max_reply_seconds + STOP_TIMEOUT + STORE_POLL_INTERVAL
        return message.created_at + timedelta(seconds=bound)

    @staticmethod
    def _done(message: MessageRecord) -> StreamEvent:
        return StreamEvent(message.id, 0, "", message.status, done=True, message=message)
