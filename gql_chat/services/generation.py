"""Reply generation: one task per reply, owned by the app (not by a request or a websocket).

Each delta gets the next `seq`, reaches followers at once through the live reply, and is saved
in small batches (every `stream_flush_interval` seconds or `stream_flush_bytes` characters), so
little is ever unsaved. The end is one final write: status, text, usage, cost, timings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.errors import DomainError
from gql_chat.llm.types import ChatProvider, ChatRequest, Completion, TextDelta
from gql_chat.store.messages import MessageRecord, MessageStatus, MessageStore, UsageRecord
from gql_chat.streams.replies import LiveReply, ReplyRegistry

logger = logging.getLogger(__name__)

FinishedHook = Callable[[MessageRecord], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GenerationJob:
    message_id: ObjectId
    owner_id: ObjectId
    conversation_id: ObjectId
    request: ChatRequest


@dataclass(eq=False)
class Generation:
    """A started reply. `sent` is set once its request has left for the model (or it ended
    without sending it). It writes nothing until `stored` says its messages were stored (True)
    or could not be (False: it is abandoned), so a reply can start before they are written."""

    sent: asyncio.Event = field(default_factory=asyncio.Event)
    stored: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] = field(init=False)

    def confirm(self) -> None:
        """Its messages are stored: it may write."""
        if not self.stored.done():
            self.stored.set_result(True)


@dataclass
class _Progress:
    """The reply text as it grows, and how much of it is saved."""

    parts: list[str]
    ends: list[int]
    saved: int = 0
    unsaved_chars: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.ends.append((self.ends[-1] if self.ends else 0) + len(text))
        self.unsaved_chars += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


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
        self._stop_reasons: dict[ObjectId, MessageStatus] = {}
        self._finalizing: set[ObjectId] = set()
        self.on_finished: list[FinishedHook] = []

    def active_count(self, owner_id: ObjectId) -> int:
        return len(self._registry.active_for(owner_id))

    def start(self, job: GenerationJob) -> Generation:
        """Start generating; the caller then resolves `stored`, or calls `abandon`."""
        reply = self._registry.start(job.message_id, job.owner_id)
        generation = Generation()
        generation.task = asyncio.create_task(
            self._run(job, reply, generation), name=f"generation-{job.message_id}"
        )
        self._generations[job.message_id] = generation

        def forget(_: asyncio.Task[None]) -> None:
            generation.sent.set()
            self._generations.pop(job.message_id, None)

        generation.task.add_done_callback(forget)
        return generation

    def abandon(self, message_id: ObjectId) -> None:
        """The reply's messages could not be stored: end it (closing the upstream request)
        without writing anything."""
        generation = self._generations.get(message_id)
        if generation is None:
            return
        if not generation.stored.done():
            generation.stored.set_result(False)
        if message_id not in self._finalizing:
            generation.task.cancel()

    async def stop(
        self, message_id: ObjectId, status: MessageStatus = MessageStatus.STOPPED
    ) -> bool:
        """Cancel a reply of this process (closing the upstream request) and wait until its
        final state is stored. False when no such generation runs here."""
        generation = self._generations.get(message_id)
        if generation is None:
            return False
        if message_id not in self._finalizing:
            self._stop_reasons[message_id] = status
            generation.task.cancel()
        await asyncio.wait({generation.task})
        return True

    async def stop_owner(self, owner_id: ObjectId) -> None:
        for reply in self._registry.active_for(owner_id):
            await self.stop(reply.message_id)

    async def shutdown(self, grace: float) -> None:
        """Let in-flight replies finish for `grace` seconds; store the rest as INTERRUPTED."""
        pending = {generation.task for generation in self._generations.values()}
        if pending:
            logger.info("waiting for %d replies to finish", len(pending))
            await asyncio.wait(pending, timeout=grace)
        for message_id in list(self._generations):
            await self.stop(message_id, MessageStatus.INTERRUPTED)

    async def _run(
        self, job: GenerationJob, reply: LiveReply[MessageRecord], generation: Generation
    ) -> None:
        progress = _Progress(parts=[], ends=[])
        flush_now = asyncio.Event()
        flusher = asyncio.create_task(
            self._flush_periodically(job.message_id, progress, flush_now, generation.stored)
        )
        started = time.monotonic()
        first_token_at: float | None = None
        completion: Completion | None = None
        status = MessageStatus.COMPLETE
        error: dict[str, str] | None = None
        try:
            async for event in self._provider.stream(job.request, generation.sent.set):
                if isinstance(event, TextDelta):
                    first_token_at = first_token_at or time.monotonic()
                    progress.add(event.text)
                    reply.append(event.text)
                    if progress.unsaved_chars >= self._settings.stream_flush_bytes:
                        flush_now.set()
                else:
                    completion = event
        except DomainError as exc:
            status, error = MessageStatus.ERROR, {"code": exc.code, "message": exc.message}
        except asyncio.CancelledError:
            status = self._stop_reasons.pop(job.message_id, MessageStatus.INTERRUPTED)
        except Exception:
            logger.exception("reply generation failed", extra={"message_id": str(job.message_id)})
            status = MessageStatus.ERROR
            error = {"code": "INTERNAL_SERVER_ERROR", "message": "The reply failed."}
        self._finalizing.add(job.message_id)
        final: MessageRecord | None = None
        try:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            if await asyncio.shield(generation.stored):
                fields = self._final_fields(
                    progress, status, error, completion, started, first_token_at
                )
                await self._messages.finish(job.message_id, fields)
                final = await self._messages.get(job.owner_id, job.message_id)
        except Exception:
            logger.exception(
                "could not store a finished reply", extra={"message_id": str(job.message_id)}
            )
        finally:
            self._finalizing.discard(job.message_id)
            self._registry.discard(job.message_id)
        if final is None:
            reply.close()
            return
        reply.finish(final)
        for hook in self.on_finished:
            try:
                await hook(final)
            except Exception:
                logger.exception("a reply-finished hook failed")

    async def _flush_periodically(
        self,
        message_id: ObjectId,
        progress: _Progress,
        flush_now: asyncio.Event,
        stored: asyncio.Future[bool],
    ) -> None:
        if not await asyncio.shield(stored):
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flush_now.wait(), self._settings.stream_flush_interval)
            flush_now.clear()
            count = len(progress.ends)
            if count > progress.saved:
                new_ends = progress.ends[progress.saved : count]
                progress.unsaved_chars = 0
                await self._messages.save_progress(
                    message_id, "".join(progress.parts[:count]), progress.ends[:count], new_ends
                )
                progress.saved = count

    def _final_fields(
        self,
        progress: _Progress,
        status: MessageStatus,
        error: dict[str, str] | None,
        completion: Completion | None,
        started: float,
        first_token_at: float | None,
    ) -> dict[str, Any]:
        usage = completion.usage if completion else None
        finished = time.monotonic()
        return {
            "status": status.value,
            "content": progress.text,
            "seq": len(progress.ends),
            "seq_ends": progress.ends,
            "error": error,
            "usage": (
                UsageRecord(usage.prompt_tokens, usage.completion_tokens, usage.cost).to_document()
                if usage
                else None
            ),
            "finish_reason": completion.finish_reason if completion else None,
            "generation_id": completion.generation_id if completion else None,
            "timings": {
                "time_to_first_token_ms": (
                    round((first_token_at - started) * 1000, 1) if first_token_at else None
                ),
                "total_ms": round((finished - started) * 1000, 1),
            },
        }
