"""Chat: sending messages, stopping replies, reading threads, and following reply streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.domain.pages import Page
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.errors import BadUserInput, DomainError, NotFound, RateLimited, Unauthenticated
from gql_chat.llm.offline import OFFLINE_MODEL_ID
from gql_chat.llm.tokens import trim_to_budget
from gql_chat.llm.types import ChatProvider, ChatRequest, ModelInfo, PromptMessage
from gql_chat.services.conversations import ConversationService
from gql_chat.services.generation import (
    CONVERSATION_GONE,
    OWNER_REMOVED,
    SEND_TIMEOUT,
    STOP_TIMEOUT,
    WRITE_TIMEOUT,
    GenerationJob,
    GenerationRunner,
    SendSlot,
)
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.pagination import page_size
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.threads import newest_leaf_under, path_to
from gql_chat.services.titles import title_from
from gql_chat.services.validation import check_prose, check_text, forbidden_character
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.database import Database
from gql_chat.streams.replies import Pacer, ReplyRegistry
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

MESSAGE_NOT_FOUND = "Message not found."
MAX_CLIENT_MESSAGE_ID = 200
STORE_POLL_INTERVAL = 0.5
UPSTREAM_HEAD_START = 0.05
"""How long sendMessage lets the model request go out before its own bookkeeping: the model
starts on the first token while we write, rather than after."""
PROMPT_ROLES = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}
REPLY_KEY_SEPARATOR = "\x1f"
"""Between a send's `clientMessageId` and "reply" in the key its first reply is stored under:
no client key contains it, and the unique key index lets only one reply to that send exist."""


def reply_key_for(client_message_id: str | None) -> str | None:
    if client_message_id is None:
        return None
    return f"{client_message_id}{REPLY_KEY_SEPARATOR}reply"


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
        self._sends: set[asyncio.Task[SendResult]] = set()
        self._keyed_sends: dict[tuple[ObjectId, str], asyncio.Task[SendResult]] = {}

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
        """Validates at once; the rest runs to its end even if the caller goes away (a
        cancelled websocket operation), so a send is stored whole or not at all."""
        self._check_content(content)
        key: tuple[ObjectId, str] | None = None
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
            key = (owner_id, client_message_id)
            earlier = self._keyed_sends.get(key)
            if earlier is not None:  # a send with this key is in flight here: its answer
                with contextlib.suppress(Exception):
                    return await asyncio.shield(earlier)
        return await self._to_completion(
            self._send(
                owner_id,
                content=content,
                conversation_id=conversation_id,
                folder_id=folder_id,
                llm_config_id=llm_config_id,
                model=model,
                client_message_id=client_message_id,
            ),
            key,
        )

    async def _send(
        self,
        owner_id: ObjectId,
        *,
        content: str,
        conversation_id: str | None,
        folder_id: str | None,
        llm_config_id: str | None,
        model: str | None,
        client_message_id: str | None,
    ) -> SendResult:
        if client_message_id is not None:
            existing = await self._messages.find_by_client_id(owner_id, client_message_id)
            if existing is not None:
                return await self._result_for(owner_id, existing)
        slot = await self._check_capacity(owner_id)
        try:
            if conversation_id is not None:
                conversation = await self._conversations.get(owner_id, conversation_id)
            else:
                conversation = await self._conversations.create(
                    owner_id,
                    title=title_from(content),
                    folder_id=folder_id,
                    title_source="first_words",
                )
            try:
                resolved = await self._resolve_model(owner_id, conversation, llm_config_id, model)
                user_message = self._draft_question(
                    owner_id,
                    conversation.id,
                    content,
                    conversation.active_leaf_id,
                    client_message_id,
                )
                return await self._reply_to(
                    owner_id,
                    conversation,
                    user_message,
                    resolved,
                    slot,
                    new=True,
                    reply_key=reply_key_for(client_message_id),
                )
            except DuplicateKeyError:
                if client_message_id is None:
                    raise
                # Another send with this key (on another instance) stored first: answer with
                # its result. (Or a retry repaired this send's missing reply: the same.)
                existing = await self._messages.find_by_client_id(owner_id, client_message_id)
                if existing is None:
                    raise
                if conversation_id is None and existing.conversation_id != conversation.id:
                    await self._drop_conversation(owner_id, conversation.id)
                return await self._result_for(owner_id, existing)
            except DomainError:
                # Refused (the conversation or the user went away meanwhile, a bad preset):
                # nothing of the send is left, not even the conversation it opened.
                if conversation_id is None:
                    await self._drop_conversation(owner_id, conversation.id)
                raise
        finally:
            self._runner.release(slot)

    async def _to_completion(
        self, work: Coroutine[Any, Any, SendResult], key: tuple[ObjectId, str] | None = None
    ) -> SendResult:
        """Run `work` in a task of its own and wait for it: cancelling the caller does not cut
        it halfway (each of its steps has its own bound, and the whole `SEND_TIMEOUT`)."""

        async def bounded() -> SendResult:
            async with asyncio.timeout(SEND_TIMEOUT):
                return await work

        task = asyncio.create_task(bounded())
        self._sends.add(task)
        if key is not None:
            self._keyed_sends[key] = task

        def done(finished: asyncio.Task[SendResult]) -> None:
            self._sends.discard(finished)
            if key is not None and self._keyed_sends.get(key) is finished:
                del self._keyed_sends[key]
            if not finished.cancelled():
                finished.exception()  # retrieved: the caller may have gone

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _drop_conversation(self, owner_id: ObjectId, conversation_id: ObjectId) -> None:
        """Best effort, bounded: a conversation a failed send opened."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._conversations.delete(owner_id, conversation_id)
        except NotFound:
            pass  # gone already (its user was deleted)
        except Exception:
            logger.warning("could not delete the conversation of a failed send", exc_info=True)

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
        slot: SendSlot,
        *,
        new: bool,
        reply_key: str | None = None,
    ) -> SendResult:
        """Start the reply, then store it (and `user_message` when `new`), then do the
        conversation's bookkeeping: the request leaves for the model after the reads it needs and
        before any write, so the provider works on the first token while we write.

        Should a write fail, the reply is abandoned without the runner writing anything (a stored
        reply is marked INTERRUPTED). Should the user or the conversation have gone meanwhile,
        what was written is deleted again. Once both messages are stored and the user is still
        there, the reply is confirmed, whatever happens to the bookkeeping after."""
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
            client_message_id=reply_key,
        )
        created = [user_message, assistant] if new else [assistant]
        job = GenerationJob(
            message_id=assistant.id,
            owner_id=owner_id,
            conversation_id=conversation.id,
            request=request,
        )
        async with asyncio.timeout(WRITE_TIMEOUT):
            refused = await self._user_refusal(owner_id)
        if refused is not None:
            raise refused
        # This process refuses (here, and after the writes) while it removes or disables the
        # user, or deletes the conversation; a removal waits for this send's slot.
        generation = self._runner.start(job, slot)
        written: list[MessageRecord] = []
        try:
            with contextlib.suppress(TimeoutError):  # a slow connection must not hold the answer
                async with asyncio.timeout(UPSTREAM_HEAD_START):
                    await generation.sent.wait()
            async with asyncio.timeout(WRITE_TIMEOUT * len(created)):
                for message in created:
                    await self._messages.add(message)
                    written.append(message)
            if (refused := self._runner.refusal(owner_id, conversation.id)) is not None:
                raise refused
        except BaseException as exc:
            self._runner.abandon(assistant.id)
            if isinstance(exc, DomainError):
                await self._undo(owner_id, written)
            elif assistant not in written and not isinstance(exc, DuplicateKeyError):
                # Its insert may have landed all the same: it must not stay PENDING.
                await self._interrupt(assistant.id)
            raise
        if not generation.confirm():  # pragma: no cover - only a stalled event loop gets here
            await self._messages.finish(assistant.id, {"status": MessageStatus.INTERRUPTED.value})
        for message in created:
            self._conversations.publish(
                owner_id, UserEventKind.MESSAGE_CREATED, conversation.id, message.id
            )
        now = utc_now()
        async with asyncio.timeout(WRITE_TIMEOUT):
            updated = await self._db.conversations.update(
                owner_id,
                conversation.id,
                {"active_leaf_id": assistant.id, "last_message_at": now, "activity_at": now},
            )
        if updated is None:  # deleted meanwhile (by another instance, or just after a refusal)
            await self._runner.stop(assistant.id)
            await self._undo(owner_id, written)
            raise NotFound(CONVERSATION_GONE)
        self._conversations.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, conversation.id)
        return SendResult(
            conversation=updated,
            user_message=user_message,
            assistant_message=assistant,
        )

    async def _user_refusal(self, owner_id: ObjectId) -> DomainError | None:
        """Re-read before a reply starts: a user deleted or disabled before this send held its
        slot gets no reply (one that goes while it holds it is refused by the runner)."""
        user = await self._db.users.get(owner_id)
        if user is None or user.disabled:
            return Unauthenticated(OWNER_REMOVED)
        return None

    async def _undo(self, owner_id: ObjectId, written: list[MessageRecord]) -> None:
        if not written:
            return
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.delete_ids(owner_id, [m.id for m in written])
        except Exception:
            logger.warning("could not delete the messages of a refused send", exc_info=True)

    async def _interrupt(self, message_id: ObjectId) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.finish(message_id, {"status": MessageStatus.INTERRUPTED.value})
        except Exception:
            logger.warning("could not mark an abandoned reply interrupted", exc_info=True)

    async def regenerate(
        self, owner_id: ObjectId, message_id: str, model: str | None
    ) -> SendResult:
        """A new sibling reply to the same user message; it becomes the active branch."""
        return await self._to_completion(self._regenerate(owner_id, message_id, model))

    async def _regenerate(
        self, owner_id: ObjectId, message_id: str, model: str | None
    ) -> SendResult:
        target = await self.get_message(owner_id, message_id)
        if target.role is not MessageRole.ASSISTANT or target.parent_id is None:
            raise BadUserInput("messageId", "Only an assistant reply can be regenerated.")
        slot = await self._check_capacity(owner_id)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            user_message = await self.get_message(owner_id, target.parent_id)
            resolved = await self._resolve_model(owner_id, conversation, None, model)
            return await self._reply_to(
                owner_id, conversation, user_message, resolved, slot, new=False
            )
        finally:
            self._runner.release(slot)

    async def edit(self, owner_id: ObjectId, message_id: str, content: str) -> SendResult:
        """A new user message beside the edited one, plus a fresh reply; nothing is deleted."""
        self._check_content(content)
        return await self._to_completion(self._edit(owner_id, message_id, content))

    async def _edit(self, owner_id: ObjectId, message_id: str, content: str) -> SendResult:
        target = await self.get_message(owner_id, message_id)
        if target.role is not MessageRole.USER:
            raise BadUserInput("messageId", "Only a user message can be edited.")
        slot = await self._check_capacity(owner_id)
        try:
            conversation = await self._conversations.get(owner_id, target.conversation_id)
            resolved = await self._resolve_model(owner_id, conversation, None, None)
            edited = self._draft_question(owner_id, conversation.id, content, target.parent_id)
            return await self._reply_to(owner_id, conversation, edited, resolved, slot, new=True)
        finally:
            self._runner.release(slot)

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
        """The stored pair of an earlier send with the same key. A user message stored without
        its reply (the reply's write failed) gets its reply now: a retry never hits a dead end,
        and the reply's own key makes two concurrent repairs store one reply."""
        conversation = await self._conversations.get(owner_id, user_message.conversation_id)
        reply = await self._messages.first_child(owner_id, user_message.id)
        if reply is None:
            return await self._repair(owner_id, conversation, user_message)
        return SendResult(
            conversation=conversation, user_message=user_message, assistant_message=reply
        )

    async def _repair(
        self, owner_id: ObjectId, conversation: ConversationRecord, user_message: MessageRecord
    ) -> SendResult:
        slot = await self._check_capacity(owner_id)
        try:
            resolved = await self._resolve_model(owner_id, conversation, None, None)
            return await self._reply_to(
                owner_id,
                conversation,
                user_message,
                resolved,
                slot,
                new=False,
                reply_key=reply_key_for(user_message.client_message_id),
            )
        except DuplicateKeyError:  # a concurrent repair (or the first send) stored it first
            reply = await self._messages.first_child(owner_id, user_message.id)
            if reply is None:
                raise
            return SendResult(
                conversation=conversation, user_message=user_message, assistant_message=reply
            )
        finally:
            self._runner.release(slot)

    def _check_content(self, content: str) -> None:
        limit = self._settings.max_message_chars
        if not content.strip() or len(content) > limit:
            raise BadUserInput("content", f"A message must be 1 to {limit} characters.")
        check_prose(content, "content", "A message")

    async def _check_capacity(self, owner_id: ObjectId) -> SendSlot:
        """Replies started per minute, and replies in flight at once: the slot is claimed in
        the same step as the check (release it when the send ends, however it ends)."""
        await self._limits.hit(self._limits.send_per_user, "send", str(owner_id))
        limit = self._settings.max_concurrent_generations
        slot = self._runner.reserve(owner_id, limit)
        if slot is None:
            raise RateLimited(
                retry_after=1, message=f"At most {limit} replies can be generated at once."
            )
        return slot

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
        pacer = Pacer()  # `follow` paces itself; the replay from the store does here
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
                await pacer.pace()
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
