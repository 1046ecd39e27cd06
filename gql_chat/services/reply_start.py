"""Starting a reply: the one path every send, edit, regeneration and repair takes, so each
gets the same admission (rate, concurrent replies), the same order of reads, model request and
writes, and the same clean-up when anything on the way fails."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus, ThreadTurn
from gql_chat.domain.presets import ReasoningEffort
from gql_chat.domain.trees import path_to
from gql_chat.domain.users import UserRecord
from gql_chat.errors import (
    AlreadyExists,
    BadUserInput,
    Conflict,
    DomainError,
    EmailNotVerified,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from gql_chat.llm.types import ChatRequest, PromptFile
from gql_chat.services.accounts import AccountService
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.budgets import BudgetService
from gql_chat.services.completion import Completions
from gql_chat.services.conversations import ConversationService
from gql_chat.services.generation import (
    CONVERSATION_GONE,
    OWNER_REMOVED,
    SEND_TIMEOUT,
    WRITE_TIMEOUT,
    GenerationJob,
    GenerationRunner,
    SendSlot,
)
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.prompts import PromptService, ResolvedModel
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.reply_slots import SharedReplySlots
from gql_chat.services.validation import check_prose
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

UPSTREAM_HEAD_START = 0.05
"""How long a send lets the model request go out before its own bookkeeping: the model
starts on the first token while we write, rather than after."""


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """What `reply_to` needs before the request leaves, read alongside the conversation
    (`ReplyStarter.read_conversation`): its messages, with its owner checked active."""

    thread: list[ThreadTurn]


def turns_to(thread: list[ThreadTurn], leaf_id: ObjectId | None) -> list[ThreadTurn]:
    """The turns from the root down to `leaf_id` (empty without a leaf)."""
    by_id = {turn.id: turn for turn in thread}
    return [by_id[i] for i in path_to(thread, leaf_id)]


def reaches_root(path: list[ThreadTurn], leaf_id: ObjectId) -> bool:
    """Whether `path` (`turns_to`'s) is whole: from a root down to `leaf_id`."""
    return bool(path) and path[0].parent_id is None and path[-1].id == leaf_id


@dataclass(frozen=True, slots=True)
class SendResult:
    conversation: ConversationRecord
    user_message: MessageRecord
    assistant_message: MessageRecord


class ReplyStarter:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        accounts: AccountService,
        conversations: ConversationService,
        prompts: PromptService,
        attachments: AttachmentService,
        runner: GenerationRunner,
        rate_limits: RateLimits,
        budgets: BudgetService,
        model_access: ModelAccess,
        shared_slots: SharedReplySlots | None = None,
        *,
        concurrent_reads: bool | None = None,
    ) -> None:
        """`concurrent_reads`: `read_conversation` reads at once rather than in turn; by
        default on a networked store, where each read is a round trip (the embedded store has
        none to save, and the tasks would cost)."""
        self._concurrent_reads = (
            not database.embedded if concurrent_reads is None else concurrent_reads
        )
        self._attachments = attachments
        self._settings = settings
        self._messages = database.messages
        self._accounts = accounts
        self._conversations = conversations
        self._prompts = prompts
        self._runner = runner
        self._limits = rate_limits
        self._budgets = budgets
        self._model_access = model_access
        self._shared_slots = shared_slots
        self._sends = Completions(SEND_TIMEOUT)

    def check_content(self, content: str, *, with_files: bool = False) -> None:
        """A message with files may have no text."""
        limit = self._settings.max_message_chars
        if len(content) > limit or not (content.strip() or with_files):
            raise BadUserInput("content", f"A message must be 1 to {limit} characters.")
        check_prose(content, "content", "A message")

    async def claim_slot(self, owner: UserRecord) -> SendSlot:
        """The budget, replies started per minute, and replies in flight at once: the slot is
        claimed in the same step as the check (release it when the send ends, however it
        ends). With several instances, the user's replies on every instance count.
        `owner` is the user as the request's own sign-in check read it (once per HTTP request,
        once per websocket operation): its model settings and verified email are as fresh as
        a read here would be, without a round trip before the request leaves for the model
        (the budget's spending is read by `BudgetService.check`; a removal meanwhile is caught
        by `_ensure_active`: just before the request leaves, or for a send on a networked
        store in `read_conversation`). Within one HTTP document, a change an earlier mutation
        made to the user is not seen."""
        owner_id = owner.id
        if self._settings.require_verified_email and not owner.email_verified:
            raise EmailNotVerified()
        await self._budgets.check(owner)
        await self._limits.hit(self._limits.send_per_user, "send", str(owner_id))
        limit = self._settings.max_concurrent_generations
        slot = self._runner.reserve(owner_id, limit)
        if slot is not None and self._shared_slots is not None:
            try:
                claimed = await self._shared_slots.claim(slot, limit)
            except BaseException:
                self._runner.release(slot)
                raise
            if not claimed:
                self._runner.release(slot)
                slot = None
        if slot is None:
            raise RateLimited(
                retry_after=1, message=f"At most {limit} replies can be generated at once."
            )
        slot.owner = owner
        return slot

    async def read_conversation(
        self, owner_id: ObjectId, conversation_id: str
    ) -> tuple[ConversationRecord, ReadAhead | None]:
        """The conversation a send goes into (NOT_FOUND unless `owner_id`'s), read with the
        send's slot held. With `concurrent_reads`, its messages are read and its owner checked
        active at the same time, for `reply_to`: one round trip before the request leaves for
        the model rather than three."""
        oid = parse_object_id(conversation_id)
        if not self._concurrent_reads or oid is None:
            return await self._conversations.get(owner_id, conversation_id), None
        # All three end before any error is raised, the conversation's first: the same error
        # whichever read answers first, and no read left running.
        conversation, active, thread = await asyncio.gather(
            self._conversations.get(owner_id, oid),
            self._ensure_active(owner_id),
            self._messages.thread(owner_id, oid),
            return_exceptions=True,
        )
        for outcome in (conversation, active, thread):
            if isinstance(outcome, BaseException):
                raise outcome
        return cast(ConversationRecord, conversation), ReadAhead(cast(list[ThreadTurn], thread))

    async def resolve_model(
        self,
        slot: SendSlot,
        conversation: ConversationRecord | None,
        llm_config_id: str | None,
        model: str | None,
        effort: ReasoningEffort | None = None,
    ) -> ResolvedModel:
        """The model an admitted send uses (`PromptService.resolve_model`), refused with
        FORBIDDEN when its owner may not use it, however it was picked."""
        resolved = await self._prompts.resolve_model(
            slot.owner_id, conversation, llm_config_id, model, effort
        )
        if slot.owner is None:
            raise Unauthenticated()
        self._model_access.require(slot.owner, resolved.model)
        return resolved

    def release(self, slot: SendSlot) -> None:
        self._runner.release(slot)

    async def to_completion(self, work: Coroutine[Any, Any, SendResult]) -> SendResult:
        """Run a send in a task of its own, bounded by `SEND_TIMEOUT`: cancelling the caller
        does not cut it halfway."""
        return await self._sends.run(work)

    def start(self, work: Coroutine[Any, Any, SendResult]) -> asyncio.Task[SendResult]:
        """`to_completion` for a caller that shares the task (a send with a key)."""
        return self._sends.start(work)

    def draft_question(
        self,
        owner_id: ObjectId,
        conversation_id: ObjectId,
        content: str,
        parent_id: ObjectId | None,
        client_message_id: str | None = None,
        attachments: Sequence[AttachmentRecord] = (),
    ) -> MessageRecord:
        """A user message, complete from the start, not yet stored (`reply_to` stores it)."""
        return self._messages.draft(
            owner_id,
            conversation_id,
            role=MessageRole.USER,
            content=content,
            status=MessageStatus.COMPLETE,
            parent_id=parent_id,
            client_message_id=client_message_id,
            attachment_ids=tuple(a.id for a in attachments),
        )

    async def reply_to(
        self,
        owner_id: ObjectId,
        conversation: ConversationRecord,
        user_message: MessageRecord,
        resolved: ResolvedModel,
        slot: SendSlot,
        *,
        new: bool,
        reply_key: str | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> SendResult:
        """Start the reply, then store it (and `user_message` when `new`), then do the
        conversation's bookkeeping: the request leaves for the model after the reads it needs and
        before any write, so the provider works on the first token while we write.

        Should a write fail, the reply is abandoned without the runner writing anything (a stored
        reply is marked INTERRUPTED). Should the user or the conversation have gone meanwhile,
        what was written is deleted again. Once both messages are stored and the user is still
        there, the reply is confirmed, whatever happens to the bookkeeping after.

        Raises `AlreadyExists` when a keyed message was stored before (by a concurrent send or
        repair); what this call wrote is then kept, for that other send's answer.

        `read_ahead` (`read_conversation`'s) saves the thread's read and the owner's check. Its
        thread was read beside the conversation, not after it, so it may lack the question's
        parent: another send into the conversation stored it, and made it the active leaf,
        between the two reads. The thread is then read again."""
        parent_id = user_message.parent_id
        path = turns_to(read_ahead.thread, parent_id) if read_ahead is not None else []
        if parent_id is not None and not reaches_root(path, parent_id):
            path = turns_to(await self._messages.thread(owner_id, conversation.id), parent_id)
        turns = [(turn.role, turn.content, turn.attachment_ids) for turn in path]
        turns.append((user_message.role, user_message.content, user_message.attachment_ids))
        request = await self._prompt(owner_id, turns, resolved)
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
        if read_ahead is None:
            await self._ensure_active(owner_id)
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
            if isinstance(exc, AlreadyExists):
                pass  # another send or repair stored first: what this one wrote is its answer
            elif isinstance(exc, DomainError):
                await self._undo(owner_id, written)
            elif assistant not in written:
                # Its insert may have landed all the same: it must not stay PENDING.
                await self._interrupt(assistant.id)
            raise
        if not generation.confirm():  # pragma: no cover - only a stalled event loop gets here
            await self._messages.finish(assistant.id, {"status": MessageStatus.INTERRUPTED.value})
        for message in created:
            self._conversations.publish(
                owner_id, UserEventKind.MESSAGE_CREATED, conversation.id, message.id
            )
        async with asyncio.timeout(WRITE_TIMEOUT):
            updated = await self._conversations.set_active_leaf(
                owner_id, conversation.id, assistant.id, replied=True
            )
        if updated is None:  # deleted meanwhile (by another instance, or just after a refusal)
            await self._runner.stop(assistant.id)
            await self._undo(owner_id, written)
            raise NotFound(CONVERSATION_GONE)
        return SendResult(
            conversation=updated,
            user_message=user_message,
            assistant_message=assistant,
        )

    async def continue_reply(
        self,
        owner_id: ObjectId,
        conversation: ConversationRecord,
        question: MessageRecord,
        reply: MessageRecord,
        resolved: ResolvedModel,
        slot: SendSlot,
    ) -> SendResult:
        """Continue `reply` in place: the model gets the path to it, the reply's text last as
        the start of its answer, and the new deltas go on from the reply's last `seq` (a
        follower from any `after` gets the old ones first). The reply is claimed back to
        STREAMING first, only while it is as read (one continuation at a time, on any
        instance), and restored as it was should it not start after all. The reply comes back
        as it is now (STREAMING); the branch through it becomes the active one."""
        thread = await self._messages.thread(owner_id, conversation.id)
        path = turns_to(thread, reply.parent_id)
        turns = [(turn.role, turn.content, turn.attachment_ids) for turn in path]
        request = await self._prompt(owner_id, turns, resolved, answer_start=reply.content)
        job = GenerationJob(reply.id, owner_id, conversation.id, request, earlier=reply)
        await self._ensure_active(owner_id)
        claim = ObjectId()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                if not await self._messages.reopen(reply, claim):
                    raise Conflict("The reply changed meanwhile; reload it.")
            # Refused while this process removes the user or changes the conversation.
            self._runner.start(job, slot).confirm()
        except BaseException:
            await self._restore(reply, claim)  # a write that timed out may have landed
            raise
        async with asyncio.timeout(WRITE_TIMEOUT):
            updated = await self._conversations.set_active_leaf(
                owner_id, conversation.id, reply.id, replied=True
            )
        if updated is None:  # deleted meanwhile, by another instance
            await self._runner.stop(reply.id)
            raise NotFound(CONVERSATION_GONE)
        self._conversations.publish(
            owner_id, UserEventKind.MESSAGE_UPDATED, conversation.id, reply.id
        )
        return SendResult(
            conversation=updated,
            user_message=question,
            assistant_message=dataclasses.replace(
                reply, status=MessageStatus.STREAMING, finish_reason=None
            ),
        )

    async def check_files_suit(
        self, owner_id: ObjectId, question: MessageRecord, resolved: ResolvedModel
    ) -> None:
        """A reply to an existing question (regenerated, continued): the model chosen now
        must take the question's files (refused before anything is written)."""
        if question.attachment_ids:
            await self._attachments.for_message(
                owner_id,
                [str(i) for i in question.attachment_ids],
                question.conversation_id,
                await self._prompts.model_info(resolved.model),
            )

    async def _ensure_active(self, owner_id: ObjectId) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT):
            if not await self._accounts.is_active(owner_id):
                # Deleted or disabled before this send held its slot (one that goes while it
                # holds it is refused by the runner).
                raise Unauthenticated(OWNER_REMOVED)

    async def _prompt(
        self,
        owner_id: ObjectId,
        turns: list[tuple[MessageRole, str, tuple[ObjectId, ...]]],
        resolved: ResolvedModel,
        answer_start: str = "",
    ) -> ChatRequest:
        """The request, with the files of the turns the token budget keeps read in. The turns
        end with the question; `answer_start`, the text of a reply being continued, follows
        it as the start of the model's answer (an assistant message last: a prefill)."""
        files: list[tuple[PromptFile, ...]] = [()] * len(turns)
        if any(ids for _, _, ids in turns):
            model = await self._prompts.model_info(resolved.model)
            files = await self._attachments.prompt_files(
                owner_id, [(role, ids) for role, _, ids in turns], model
            )
        if not (turns[-1][1] or files[-1]):
            # The question was files alone, and none of them is for this model.
            raise BadUserInput("model", f"The model {resolved.model} cannot read this message.")
        no_files: tuple[PromptFile, ...] = ()
        prefill = [(MessageRole.ASSISTANT, answer_start, no_files)] if answer_start else []
        request = self._prompts.build_request(
            [(role, content, f) for (role, content, _), f in zip(turns, files, strict=True)]
            + prefill,
            resolved,
        )
        if prefill and [m.role for m in request.messages[-2:]] != ["user", "assistant"]:
            # The newest turn always stays: here, the reply alone filled the budget.
            raise BadUserInput(
                "messageId", "This reply is too long to continue within the prompt budget."
            )
        return await self._attachments.load(request)

    async def _undo(self, owner_id: ObjectId, written: list[MessageRecord]) -> None:
        if not written:
            return
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.delete_ids(owner_id, [m.id for m in written])
        except Exception:
            logger.warning("could not delete the messages of a refused send", exc_info=True)

    async def _restore(self, reply: MessageRecord, claim: ObjectId) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.restore(reply, claim)
        except Exception:
            logger.warning(
                "could not restore a reply whose continuation was refused", exc_info=True
            )

    async def _interrupt(self, message_id: ObjectId) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.finish(message_id, {"status": MessageStatus.INTERRUPTED.value})
        except Exception:
            logger.warning("could not mark an abandoned reply interrupted", exc_info=True)
