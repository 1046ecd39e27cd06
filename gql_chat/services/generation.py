"""Reply generation: one task per reply, owned by the app (not by a request or a websocket).

Each delta gets the next `seq`, reaches followers at once through the live reply, and is saved
in small batches (every `stream_flush_interval` seconds or `stream_flush_bytes` characters), so
little is ever unsaved. The end is one final write: status, text, usage, cost, timings.

Every step has a bound, so a reply always ends and frees its slot: the stream by
`max_reply_seconds` (and the provider's own first-byte and gap timeouts) and its text by
`max_reply_chars` (a MongoDB document holds 16 MB), each write by
`WRITE_TIMEOUT`, the final write by a few attempts, `stop` by `STOP_TIMEOUT` and shutdown by its
grace plus `SHUTDOWN_MARGIN`. Nothing is stopped by cancelling a task that might swallow the
cancellation: the progress saver ends when told, and a reply is cancelled only while it reads
the provider's stream, where the cancellation is caught once, by the code that expects it.

One module on purpose (about 550 lines): these invariants (every reply ends, frees its slot
once, writes its final state once, and is refused while its owner or conversation goes) span
admission, the run, stopping and shutdown; split apart, they could no longer be checked in one
reading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.messages import (
    Delta,
    MessageRecord,
    MessageStatus,
    UsageRecord,
    added_usage,
    delta_end,
    split_texts,
)
from gql_chat.domain.users import UserRecord
from gql_chat.errors import DomainError, NotFound, Unauthenticated, UpstreamError, UpstreamTimeout
from gql_chat.llm.tokens import estimate_tokens, message_tokens
from gql_chat.llm.types import (
    ChatProvider,
    ChatRequest,
    Completion,
    ReasoningDelta,
    TextDelta,
    TokenUsage,
)
from gql_chat.store.messages import MessageStore
from gql_chat.store.usage import usage_to_document
from gql_chat.streams.replies import LiveReply, ReplyRegistry

logger = logging.getLogger(__name__)

FinishedHook = Callable[[MessageRecord], Awaitable[None]]
SettleHook = Callable[["GenerationJob", UsageRecord], Awaitable[UsageRecord]]
"""Before a reply's final write: the usage of its request, priced (a cost the provider did not
report, estimated) and charged to its owner; what it returns is stored."""

WRITE_TIMEOUT = 5.0
"""The longest one database write of a reply may take before it counts as failed."""
FINAL_WRITE_ATTEMPTS = 3
FINAL_WRITE_BACKOFF = 0.2
STOP_TIMEOUT = FINAL_WRITE_ATTEMPTS * (WRITE_TIMEOUT + 2 * FINAL_WRITE_BACKOFF) + 1.0
"""How long `stop` waits for the final state: longer than the final write can take."""
CONFIRM_TIMEOUT = 4 * WRITE_TIMEOUT
"""How long a reply waits to learn whether its messages were stored (the sender bounds its
writes by less, so only a stalled event loop reaches this)."""
SHUTDOWN_MARGIN = 3.0
"""After the grace period: how long stopped replies get to store their final state."""
HOOK_TIMEOUT = 60.0
"""The longest a reply-finished hook (automatic titles ask the model) may run."""
SEND_TIMEOUT = 30.0
"""The longest a send's own work (reads, its writes, the conversation's bookkeeping) may take;
an owner's removal waits at most this long for the sends it let finish."""
OWNER_REMOVED = "The session has ended; sign in again."
FAILED_REPLY = {
    "status": MessageStatus.ERROR.value,
    "error": {"code": "INTERNAL_SERVER_ERROR", "message": "The reply failed."},
}
CONVERSATION_GONE = "Conversation not found."


@dataclass(eq=False)
class SendSlot:
    """One send's claim on its owner's concurrency limit. Taken synchronously when the send is
    admitted (so no other send can pass the check in between), turned into a running reply by
    `GenerationRunner.start`, and closed when the send ends, however it ends."""

    owner_id: ObjectId
    owner: UserRecord | None = None
    """The owner the send was admitted with: as the request's sign-in check read it
    (`ReplyStarter.claim_slot`)."""
    started: bool = False
    ended: asyncio.Future[None] = field(default_factory=lambda: _new_future())
    freed: asyncio.Future[None] = field(default_factory=lambda: _new_future())
    """Resolves once the slot no longer counts against the limit: its send ended without
    starting a reply, or the reply it started ended (the limit shared in Redis follows it)."""


@dataclass(frozen=True, slots=True)
class GenerationJob:
    message_id: ObjectId
    owner_id: ObjectId
    conversation_id: ObjectId
    request: ChatRequest
    earlier: MessageRecord | None = None
    """The stored reply this generation continues: its deltas go on from its last `seq`, and
    its usage and time add to the continuation's."""


class Phase(Enum):
    STARTING = auto()
    STREAMING = auto()
    FINISHING = auto()


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(eq=False)
class Generation:
    """A started reply. `sent` is set once its request has left for the model (or it ended
    without sending it). It writes nothing until `stored` says its messages were stored (True)
    or could not be (False: it is abandoned), so a reply can start before they are written.
    `finished` resolves once its final state is stored (or given up): its slot is free."""

    job: GenerationJob
    reply: LiveReply[MessageRecord]
    sent: asyncio.Event = field(default_factory=asyncio.Event)
    stored: asyncio.Future[bool] = field(default_factory=_new_future)
    finished: asyncio.Future[None] = field(default_factory=_new_future)
    earlier: tuple[Delta, ...] = ()
    """The deltas of the reply it continues (none for a new reply)."""
    phase: Phase = Phase.STARTING
    stop_status: MessageStatus | None = None
    task: asyncio.Task[None] = field(init=False)

    def confirm(self) -> bool:
        """Its messages are stored: it may write. False when it already gave up waiting."""
        if not self.stored.done():
            self.stored.set_result(True)
        return self.stored.result()

    def request_stop(self, status: MessageStatus) -> None:
        """End the reply with `status`. The task is cancelled only while it reads the stream
        (closing the upstream request at once); before that it sees `stop_status` and never
        starts; after that it is already finishing."""
        if self.stop_status is None:
            self.stop_status = status
        if self.phase is Phase.STREAMING:
            self.task.cancel()


@dataclass
class _Progress:
    """The reply's deltas as they come (answer and reasoning), and how many are saved."""

    deltas: list[Delta] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    saved: int = 0
    unsaved_chars: int = 0
    answer_length: int = 0
    reasoning_length: int = 0

    @classmethod
    def after(cls, earlier: Sequence[Delta]) -> _Progress:
        """The progress of a continued reply: its stored deltas, all saved."""
        progress = cls()
        for delta in earlier:
            progress.add(delta)
        progress.saved = len(progress.deltas)
        progress.unsaved_chars = 0
        return progress

    def add(self, delta: Delta) -> None:
        self.deltas.append(delta)
        if delta.reasoning:
            self.reasoning_length += len(delta.text)
            self.ends.append(delta_end(self.reasoning_length, True))
        else:
            self.answer_length += len(delta.text)
            self.ends.append(delta_end(self.answer_length, False))
        self.unsaved_chars += len(delta.text)

    @property
    def length(self) -> int:
        return self.answer_length + self.reasoning_length

    def texts(self, start: int = 0, stop: int | None = None) -> tuple[str, str]:
        """The answer and the reasoning text of deltas `start` to `stop`."""
        return split_texts(self.deltas[start:stop])


@dataclass
class _Outcome:
    """How the stream ended."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    error: dict[str, str] | None = None
    completion: Completion | None = None

    def fail(self, error: DomainError) -> None:
        self.status = MessageStatus.ERROR
        self.error = {"code": error.code, "message": error.message}


def _as_record(reported: TokenUsage | None) -> UsageRecord | None:
    if reported is None:
        return None
    return UsageRecord(
        reported.prompt_tokens,
        reported.completion_tokens,
        reported.cost,
        reported.reasoning_tokens,
    )


def _unreported_usage(job: GenerationJob, progress: _Progress) -> UsageRecord | None:
    """What a request cut short cost, estimated: the provider reports usage in its last chunk,
    so a reply stopped, interrupted or failed mid-stream has none, though the provider bills
    what it generated (and a user stopping every reply just before its end would otherwise
    spend nothing). The prompt and the text this request produced, at about four characters a
    token; None when it produced nothing."""
    answer, reasoning = progress.texts(job.earlier.seq if job.earlier else 0)
    if not answer and not reasoning:
        return None
    return UsageRecord(
        prompt_tokens=sum(message_tokens(message) for message in job.request.messages),
        completion_tokens=estimate_tokens(answer) + estimate_tokens(reasoning),
        cost=None,
        cost_estimated=True,
    )


class GenerationRunner:
    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        provider: ChatProvider,
        registry: ReplyRegistry[MessageRecord],
    ) -> None:
        self._settings = settings
        self._messages = messages
        self._provider = provider
        self._registry = registry
        self._generations: dict[ObjectId, Generation] = {}
        self._slots: dict[ObjectId, set[SendSlot]] = {}
        self._blocked_owners: Counter[ObjectId] = Counter()
        self._blocked_conversations: Counter[ObjectId] = Counter()
        self.on_finished: list[FinishedHook] = []
        self.settle: SettleHook | None = None

    def active_count(self, owner_id: ObjectId) -> int:
        """Replies of the owner running here, plus sends admitted but not yet started."""
        pending = sum(1 for slot in self._slots.get(owner_id, ()) if not slot.started)
        return len(self._registry.active_for(owner_id)) + pending

    def replies_running(self, owner_id: ObjectId) -> int:
        """Replies of the owner generating here now (not counting sends not yet started)."""
        return len(self._registry.active_for(owner_id))

    def reserve(self, owner_id: ObjectId, limit: int) -> SendSlot | None:
        """A slot for one more reply of the owner, or None at `limit`. Check and claim happen
        in one step of the event loop: concurrent sends cannot all pass the check."""
        if self.active_count(owner_id) >= limit:
            return None
        slot = SendSlot(owner_id)
        self._slots.setdefault(owner_id, set()).add(slot)
        return slot

    def release(self, slot: SendSlot) -> None:
        """The send is over (idempotent): an unstarted slot is free again."""
        slots = self._slots.get(slot.owner_id)
        if slots is not None:
            slots.discard(slot)
            if not slots:
                del self._slots[slot.owner_id]
        if not slot.ended.done():
            slot.ended.set_result(None)
        if not slot.started:
            _resolve(slot.freed)

    def refusal(self, owner_id: ObjectId, conversation_id: ObjectId) -> DomainError | None:
        """Why no reply may start (or be kept) for this owner and conversation now: the owner is
        being removed or disabled, or the conversation deleted. None when it may."""
        if self._blocked_owners[owner_id]:
            return Unauthenticated(OWNER_REMOVED)
        if self._blocked_conversations[conversation_id]:
            return NotFound(CONVERSATION_GONE)
        return None

    @contextlib.contextmanager
    def _blocking(
        self, owners: Collection[ObjectId] = (), conversations: Collection[ObjectId] = ()
    ) -> Iterator[None]:
        self._blocked_owners.update(owners)
        self._blocked_conversations.update(conversations)
        try:
            yield
        finally:
            self._blocked_owners.subtract(owners)
            self._blocked_conversations.subtract(conversations)
            for key in owners:
                if self._blocked_owners[key] <= 0:
                    del self._blocked_owners[key]
            for key in conversations:
                if self._blocked_conversations[key] <= 0:
                    del self._blocked_conversations[key]

    @contextlib.asynccontextmanager
    async def removing_owner(self, owner_id: ObjectId) -> AsyncIterator[None]:
        """Around deleting or disabling a user: no reply of theirs starts meanwhile (a send in
        flight is refused and undoes its writes), the running ones are stopped first, and on
        the way out their sends in flight have ended (bounded by `SEND_TIMEOUT`)."""
        with self._blocking(owners=[owner_id]):
            await self.stop_owner(owner_id)
            yield
            await self._sends_ended(owner_id)
            await self.stop_owner(owner_id)

    @contextlib.contextmanager
    def changing_conversation(self, conversation_id: ObjectId) -> Iterator[None]:
        """Around deleting messages of a conversation: no reply starts in it here meanwhile (a
        send in flight is refused after its writes and undoes them). Its running replies go on."""
        with self._blocking(conversations=[conversation_id]):
            yield

    @contextlib.asynccontextmanager
    async def removing_conversations(
        self, owner_id: ObjectId, conversation_ids: Collection[ObjectId]
    ) -> AsyncIterator[None]:
        """Around deleting conversations: their running replies are stopped first (closing
        the upstream requests, freeing the slots), and none starts in them meanwhile."""
        ids = set(conversation_ids)
        with self._blocking(conversations=ids):
            await self.stop_conversations(owner_id, ids)
            yield

    async def stop_conversations(
        self, owner_id: ObjectId, conversation_ids: Collection[ObjectId]
    ) -> None:
        """Stop the owner's replies running here in those conversations."""
        await asyncio.gather(
            *(
                self.stop(g.job.message_id)
                for g in list(self._generations.values())
                if g.job.owner_id == owner_id and g.job.conversation_id in conversation_ids
            )
        )

    async def _sends_ended(self, owner_id: ObjectId) -> None:
        pending = {slot.ended for slot in self._slots.get(owner_id, ())}
        if pending:
            await asyncio.wait(pending, timeout=SEND_TIMEOUT)

    def running_ids(self) -> list[ObjectId]:
        """The messages of the replies running here."""
        return list(self._generations)

    @property
    def running(self) -> int:
        """Reply tasks of this process not yet ended (hooks included)."""
        return len(self._generations)

    def start(self, job: GenerationJob, slot: SendSlot | None = None) -> Generation:
        """Start generating (taking `slot`); the caller then calls `confirm`, or `abandon`.
        Raises the `refusal` when the owner or the conversation is being removed."""
        if (refused := self.refusal(job.owner_id, job.conversation_id)) is not None:
            raise refused
        earlier = tuple(job.earlier.deltas_after(0)) if job.earlier else ()
        generation = Generation(
            job, self._registry.start(job.message_id, job.owner_id, earlier), earlier=earlier
        )
        if slot is not None:
            slot.started = True
            generation.finished.add_done_callback(lambda _: _resolve(slot.freed))
        generation.task = asyncio.create_task(
            self._run(generation), name=f"generation-{job.message_id}"
        )
        self._generations[job.message_id] = generation
        generation.task.add_done_callback(lambda task: self._forget(generation, task))
        return generation

    def abandon(self, message_id: ObjectId) -> None:
        """The reply's messages could not be stored: end it (closing the upstream request)
        without writing anything."""
        generation = self._generations.get(message_id)
        if generation is None:
            return
        if not generation.stored.done():
            generation.stored.set_result(False)
        generation.request_stop(MessageStatus.INTERRUPTED)

    async def stop(
        self, message_id: ObjectId, status: MessageStatus = MessageStatus.STOPPED
    ) -> bool:
        """End a reply of this process (closing the upstream request) and wait, at most
        `STOP_TIMEOUT`, until its final state is stored. False when no such reply runs here."""
        generation = self._generations.get(message_id)
        if generation is None:
            return False
        generation.request_stop(status)
        await asyncio.wait({generation.finished}, timeout=STOP_TIMEOUT)
        return True

    async def stop_owner(self, owner_id: ObjectId) -> None:
        replies = [g for g in self._generations.values() if g.job.owner_id == owner_id]
        await asyncio.gather(*(self.stop(g.job.message_id) for g in replies))

    async def shutdown(self, grace: float) -> None:
        """Let in-flight replies (and their hooks) finish for `grace` seconds; store the rest as
        INTERRUPTED within `SHUTDOWN_MARGIN`; then end whatever still runs (hooks, stalled
        writes)."""
        if tasks := self._tasks():
            logger.info("waiting for %d replies to finish", len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        for generation in list(self._generations.values()):
            generation.request_stop(MessageStatus.INTERRUPTED)
        if unfinished := self._unfinished():
            await asyncio.wait(unfinished, timeout=SHUTDOWN_MARGIN)
        if tasks := self._tasks():
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=1.0)

    def _tasks(self) -> set[asyncio.Task[None]]:
        return {generation.task for generation in self._generations.values()}

    def _unfinished(self) -> set[asyncio.Future[None]]:
        return {g.finished for g in self._generations.values() if not g.finished.done()}

    def _forget(self, generation: Generation, task: asyncio.Task[None]) -> None:
        """When its task ends, however it ends (even cancelled before it ran)."""
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error(
                "a reply's task failed",
                exc_info=error,
                extra={"message_id": str(generation.job.message_id)},
            )
        generation.sent.set()
        self._generations.pop(generation.job.message_id, None)
        self._release(generation, None)

    def _release(self, generation: Generation, final: MessageRecord | None) -> None:
        """Free the slot and end following: once, before any hook runs."""
        if generation.finished.done():
            return
        self._registry.discard(generation.job.message_id)
        generation.finished.set_result(None)
        if final is None:
            generation.reply.close()
        else:
            generation.reply.finish(final)

    async def _run(self, generation: Generation) -> None:
        progress = _Progress.after(generation.earlier)
        outcome = _Outcome()
        wake_saver = asyncio.Event()
        saver = asyncio.create_task(self._save_while_streaming(generation, progress, wake_saver))
        final: MessageRecord | None = None
        try:
            await self._stream(generation, progress, outcome, wake_saver)
            generation.phase = Phase.FINISHING
            wake_saver.set()
            final = await self._finish(generation, progress, outcome, saver)
        finally:
            generation.phase = Phase.FINISHING
            saver.cancel()
            self._release(generation, final)
        if final is not None:
            await self._run_hooks(final)

    async def _stream(
        self,
        generation: Generation,
        progress: _Progress,
        outcome: _Outcome,
        wake_saver: asyncio.Event,
    ) -> None:
        if generation.stop_status is not None:  # stopped before it started
            outcome.status = generation.stop_status
            return
        flush_bytes = self._settings.stream_flush_bytes
        max_chars = self._settings.max_reply_chars
        deadline = asyncio.timeout(self._settings.max_reply_seconds)
        generation.phase = Phase.STREAMING
        try:
            async with deadline:
                async for event in self._provider.stream(
                    generation.job.request, generation.sent.set
                ):
                    if isinstance(event, TextDelta | ReasoningDelta):
                        if progress.length + len(event.text) > max_chars:
                            outcome.fail(
                                UpstreamError(f"The reply exceeded {max_chars} characters.")
                            )
                            break
                        outcome.first_token_at = outcome.first_token_at or time.monotonic()
                        reasoning = isinstance(event, ReasoningDelta)
                        progress.add(generation.reply.append(event.text, reasoning))
                        if progress.unsaved_chars >= flush_bytes:
                            wake_saver.set()
                    else:
                        outcome.completion = event
                    if generation.stop_status is not None:  # a stop whose cancel was swallowed
                        outcome.status = generation.stop_status
                        break
        except TimeoutError:
            if not deadline.expired():
                raise
            seconds = self._settings.max_reply_seconds
            outcome.fail(UpstreamTimeout(f"The reply took longer than the {seconds:g} s allowed."))
        except DomainError as exc:
            outcome.fail(exc)
        except asyncio.CancelledError:
            # A stop request (the only canceller while streaming): consumed here, and only here.
            outcome.status = generation.stop_status or MessageStatus.INTERRUPTED
        except Exception:
            logger.exception(
                "reply generation failed", extra={"message_id": str(generation.job.message_id)}
            )
            outcome.status = MessageStatus.ERROR
            outcome.error = {"code": "INTERNAL_SERVER_ERROR", "message": "The reply failed."}
        finally:
            generation.phase = Phase.FINISHING
            task = asyncio.current_task()
            while task is not None and task.cancelling():
                task.uncancel()

    async def _confirmed(self, generation: Generation) -> bool:
        """Whether the reply's messages were stored; gives up after `CONFIRM_TIMEOUT`."""
        if not generation.stored.done():
            await asyncio.wait({generation.stored}, timeout=CONFIRM_TIMEOUT)
        if not generation.stored.done():
            logger.error(
                "a reply's messages were never confirmed stored",
                extra={"message_id": str(generation.job.message_id)},
            )
            generation.stored.set_result(False)
        return generation.stored.result()

    async def _finish(
        self,
        generation: Generation,
        progress: _Progress,
        outcome: _Outcome,
        saver: asyncio.Task[None],
    ) -> MessageRecord | None:
        """The one final write, after the saver's last write (so it cannot land after)."""
        if not await self._confirmed(generation):
            return None
        await asyncio.wait({saver}, timeout=WRITE_TIMEOUT)
        saver.cancel()  # only a write past its own timeout is left to cut
        job = generation.job
        usage = await self._settled(job, outcome, progress)
        try:
            fields = self._final_fields(progress, outcome, job.earlier, usage)
        except Exception:
            logger.exception(
                "could not build a finished reply's record",
                extra={"message_id": str(job.message_id)},
            )
            fields = dict(FAILED_REPLY)
        for attempt in range(FINAL_WRITE_ATTEMPTS):
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await self._messages.finish(job.message_id, fields)
                    return await self._messages.get(job.owner_id, job.message_id)
            except Exception:
                if attempt + 1 == FINAL_WRITE_ATTEMPTS:
                    logger.exception(
                        "could not store a finished reply",
                        extra={"message_id": str(job.message_id)},
                    )
                    break
            await asyncio.sleep(FINAL_WRITE_BACKOFF * 2**attempt)
        # Last, the status alone (the text saved so far stays): a field the store refused must
        # not leave the reply unfinished for good.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._messages.finish(
                    job.message_id, {"status": MessageStatus.INTERRUPTED.value}
                )
                return await self._messages.get(job.owner_id, job.message_id)
        return None

    async def _save_while_streaming(
        self, generation: Generation, progress: _Progress, wake: asyncio.Event
    ) -> None:
        """Save the text so far every interval (or sooner when `wake` is set), until the reply
        finishes. It ends by itself: it is never cancelled while its writes are sound."""
        await asyncio.wait({generation.stored})
        if not generation.stored.result():
            return
        interval = self._settings.stream_flush_interval
        while True:  # `wake` is set when the reply starts finishing
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await wake.wait()
            wake.clear()
            if generation.phase is Phase.FINISHING:
                return
            await self._save(generation.job.message_id, progress)

    async def _save(self, message_id: ObjectId, progress: _Progress) -> None:
        """Append what is new since the last save: the cost follows the new deltas, not the
        whole reply. `save_progress` appends only onto the saved count it is given, so a write
        that timed out yet landed (or lands later) is never applied twice: the next one then
        matches nothing, and the stored count tells where the store really is."""
        count = len(progress.ends)
        if count == progress.saved:
            return
        progress.unsaved_chars = 0
        saved = progress.saved
        try:
            answer, reasoning = progress.texts(saved, count)
            async with asyncio.timeout(WRITE_TIMEOUT):
                stored = await self._messages.save_progress(
                    message_id, saved, (answer, reasoning), progress.ends[saved:count]
                )
        except Exception:
            logger.warning(
                "could not save a reply's progress; the final write will",
                extra={"message_id": str(message_id)},
                exc_info=True,
            )
            return
        if stored is None:  # finished meanwhile (the final write covers everything)
            return
        progress.saved = stored

    async def _run_hooks(self, final: MessageRecord) -> None:
        for hook in self.on_finished:
            try:
                async with asyncio.timeout(HOOK_TIMEOUT):
                    await hook(final)
            except Exception:
                logger.exception("a reply-finished hook failed")

    async def _settled(
        self, job: GenerationJob, outcome: _Outcome, progress: _Progress
    ) -> UsageRecord | None:
        """The usage of this request, through `settle` (bounded; its failure is logged and
        the usage kept as reported)."""
        usage = _as_record(outcome.completion.usage if outcome.completion else None)
        if self.settle is None:
            return usage
        estimated = usage is None and outcome.completion is None
        if estimated:
            usage = _unreported_usage(job, progress)
        if usage is None:
            return None
        try:
            async with asyncio.timeout(HOOK_TIMEOUT):
                settled = await self.settle(job, usage)
        except Exception:
            logger.exception(
                "could not price or charge a reply", extra={"message_id": str(job.message_id)}
            )
            settled = usage
        # An estimate nobody could price is not kept: tokens guessed, and no cost.
        return None if estimated and settled.cost is None else settled

    def _final_fields(
        self,
        progress: _Progress,
        outcome: _Outcome,
        earlier: MessageRecord | None,
        new_usage: UsageRecord | None,
    ) -> dict[str, Any]:
        """A continued reply's usage and total time add up its requests; its time to first
        token stays the first request's."""
        completion = outcome.completion
        finished = time.monotonic()
        first_token_at = outcome.first_token_at
        answer, reasoning = progress.texts()
        first_token_ms = (
            round((first_token_at - outcome.started) * 1000, 1) if first_token_at else None
        )
        total_ms = round((finished - outcome.started) * 1000, 1)
        if earlier is not None:
            new_usage = added_usage(earlier.usage, new_usage)
            first_token_ms = earlier.first_token_ms or first_token_ms
            total_ms = round((earlier.total_ms or 0.0) + total_ms, 1)
        return {
            "status": outcome.status.value,
            "content": answer,
            **({"reasoning": reasoning} if reasoning else {}),
            "seq": len(progress.ends),
            "seq_ends": progress.ends,
            "error": outcome.error,
            "usage": usage_to_document(new_usage) if new_usage else None,
            "finish_reason": completion.finish_reason if completion else None,
            "generation_id": completion.generation_id if completion else None,
            "timings": {"time_to_first_token_ms": first_token_ms, "total_ms": total_ms},
        }
