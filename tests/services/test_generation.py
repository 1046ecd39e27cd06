"""The generation runner's bounds, without HTTP: a scripted provider and the embedded store, with
writes, hooks and providers that misbehave in ways the public API cannot provoke on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.llm.types import ChatRequest, Completion, PromptMessage, ProviderEvent, TextDelta
from gql_chat.services import generation
from gql_chat.services.generation import GenerationJob, GenerationRunner
from gql_chat.store.database import Database
from gql_chat.store.embedded import open_embedded_client
from gql_chat.store.messages import MessageStore
from gql_chat.streams.replies import ReplyRegistry

REQUEST = ChatRequest(model="m", messages=[PromptMessage(role="user", content="hi")])


class ScriptedProvider:
    """Yields `deltas` with `gap` seconds between them; `deaf` swallows one cancellation, as
    code built on Python 3.11's `asyncio.wait_for` can."""

    def __init__(self, deltas: list[str], gap: float = 0.0, *, deaf: bool = False) -> None:
        self.deltas = deltas
        self.gap = gap
        self.deaf = deaf
        self.closed = False

    async def stream(
        self, request: ChatRequest, on_sent: Callable[[], None] | None = None
    ) -> AsyncIterator[ProviderEvent]:
        if on_sent:
            on_sent()
        try:
            for text in self.deltas:
                try:
                    await asyncio.sleep(self.gap)
                except asyncio.CancelledError:
                    if not self.deaf:
                        raise
                    self.deaf = False
                yield TextDelta(text)
            yield Completion(finish_reason="stop")
        finally:
            self.closed = True

    async def list_models(self) -> list[Any]:
        return []


class StallingStore(MessageStore):
    """A message store whose writes can hang, as a database that stopped answering does."""

    def __init__(self, inner: MessageStore) -> None:
        self.__dict__.update(inner.__dict__)
        self.stall_progress = False
        self.stall_finish = False

    async def save_progress(
        self, message_id: ObjectId, saved: int, texts: tuple[str, str], new_ends: list[int]
    ) -> int | None:
        if self.stall_progress:
            await asyncio.sleep(3600)
        return await super().save_progress(message_id, saved, texts, new_ends)

    async def finish(self, message_id: ObjectId, fields: dict[str, Any]) -> bool:
        if self.stall_finish:
            await asyncio.sleep(3600)
        return await super().finish(message_id, fields)


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generation, "WRITE_TIMEOUT", 0.1)
    monkeypatch.setattr(generation, "FINAL_WRITE_BACKOFF", 0.01)
    monkeypatch.setattr(generation, "STOP_TIMEOUT", 1.0)
    monkeypatch.setattr(generation, "SHUTDOWN_MARGIN", 0.3)
    monkeypatch.setattr(generation, "HOOK_TIMEOUT", 0.2)


@pytest.fixture
def store() -> StallingStore:
    return StallingStore(Database.over(open_embedded_client(), "gen", embedded=True).messages)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"stream_flush_interval": 0.01, "stream_flush_bytes": 8}
    values.update(overrides)
    return Settings.model_construct(**values)


def begin(
    runner: GenerationRunner, store: MessageStore, owner: ObjectId
) -> tuple[generation.Generation, MessageRecord]:
    """A reply started for a drafted (not yet stored) assistant message."""
    draft = store.draft(
        owner,
        ObjectId(),
        role=MessageRole.ASSISTANT,
        content="",
        status=MessageStatus.PENDING,
        parent_id=None,
    )
    return runner.start(GenerationJob(draft.id, owner, draft.conversation_id, REQUEST)), draft


async def start(
    runner: GenerationRunner, store: MessageStore, owner: ObjectId
) -> tuple[generation.Generation, MessageRecord]:
    started, draft = begin(runner, store, owner)
    await store.add(draft)
    started.confirm()
    return started, draft


def make_runner(
    store: MessageStore, provider: ScriptedProvider, **overrides: Any
) -> tuple[GenerationRunner, ReplyRegistry[MessageRecord]]:
    registry: ReplyRegistry[MessageRecord] = ReplyRegistry()
    return GenerationRunner(settings(**overrides), store, provider, registry), registry


async def test_a_database_that_stops_answering_still_frees_the_slot_and_ends_followers(
    store: StallingStore,
) -> None:
    owner = ObjectId()
    runner, registry = make_runner(store, ScriptedProvider(["a"] * 50, gap=0.001))
    store.stall_progress = store.stall_finish = True
    started, draft = await start(runner, store, owner)
    reply = registry.get(draft.id)
    assert reply is not None
    began = time.monotonic()
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    assert time.monotonic() - began < 2
    assert runner.active_count(owner) == 0
    assert runner.running == 0
    assert reply.closed  # followers fall back to the store, nothing hangs on the live reply


async def test_stop_returns_within_its_bound_when_the_final_write_hangs(
    store: StallingStore,
) -> None:
    runner, _ = make_runner(store, ScriptedProvider(["a"] * 1000, gap=0.01))
    started, draft = await start(runner, store, ObjectId())
    await asyncio.sleep(0.05)
    store.stall_finish = True
    began = time.monotonic()
    assert await runner.stop(draft.id)
    assert time.monotonic() - began <= generation.STOP_TIMEOUT + 0.2
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)


async def test_a_stop_before_the_task_first_runs_ends_it_without_a_stream(
    store: StallingStore,
) -> None:
    provider = ScriptedProvider(["never"])
    runner, _ = make_runner(store, provider)
    owner = ObjectId()
    started, draft = begin(runner, store, owner)
    await store.add(draft)
    started.confirm()
    assert await runner.stop(draft.id)  # before the task's first step
    final = await store.get(owner, draft.id)
    assert final is not None
    assert final.status is MessageStatus.STOPPED
    assert final.content == ""
    assert not provider.closed  # the request never went out
    assert runner.active_count(owner) == 0


async def test_a_swallowed_cancellation_still_stops_the_reply(store: StallingStore) -> None:
    provider = ScriptedProvider(["a"] * 1000, gap=0.01, deaf=True)
    runner, _ = make_runner(store, provider)
    owner = ObjectId()
    _, draft = await start(runner, store, owner)
    await asyncio.sleep(0.05)
    assert await runner.stop(draft.id)
    final = await store.get(owner, draft.id)
    assert final is not None
    assert final.status is MessageStatus.STOPPED
    assert provider.closed
    assert len(final.content) < 1000


async def test_a_hanging_hook_neither_holds_stop_nor_outlives_shutdown(
    store: StallingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, _ = make_runner(store, ScriptedProvider(["done"]))
    entered = asyncio.Event()

    async def stuck_hook(final: MessageRecord) -> None:
        entered.set()
        await asyncio.sleep(3600)

    runner.on_finished.append(stuck_hook)
    monkeypatch.setattr(generation, "HOOK_TIMEOUT", 3600.0)
    started, draft = await start(runner, store, ObjectId())
    await asyncio.wait_for(entered.wait(), timeout=5)
    began = time.monotonic()
    assert await runner.stop(draft.id)  # its final state is stored: no wait for the hook
    assert time.monotonic() - began < 0.1
    await runner.shutdown(grace=0.1)
    assert started.task.done()
    assert time.monotonic() - began < 0.1 + generation.SHUTDOWN_MARGIN + 1.5


async def test_a_hook_past_its_timeout_is_ended(store: StallingStore) -> None:
    runner, _ = make_runner(store, ScriptedProvider(["done"]))
    calls: list[str] = []

    async def slow_hook(final: MessageRecord) -> None:
        await asyncio.sleep(3600)

    async def next_hook(final: MessageRecord) -> None:
        calls.append(final.content)

    runner.on_finished += [slow_hook, next_hook]
    started, _ = await start(runner, store, ObjectId())
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    assert calls == ["done"]


async def test_a_reply_past_its_size_limit_ends_as_an_error_with_what_fit(
    store: StallingStore,
) -> None:
    runner, _ = make_runner(store, ScriptedProvider(["abcd"] * 10), max_reply_chars=10)
    owner = ObjectId()
    started, draft = await start(runner, store, owner)
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    final = await store.get(owner, draft.id)
    assert final is not None
    assert final.status is MessageStatus.ERROR
    assert final.content == "abcdabcd"
    assert final.error_code == "UPSTREAM_ERROR"


async def test_an_abandoned_reply_writes_nothing(store: StallingStore) -> None:
    provider = ScriptedProvider(["a"] * 100, gap=0.01)
    runner, registry = make_runner(store, provider)
    owner = ObjectId()
    started, draft = begin(runner, store, owner)
    await asyncio.sleep(0.03)
    runner.abandon(draft.id)
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    assert await store.get(owner, draft.id) is None
    assert registry.get(draft.id) is None
    assert not started.confirm()  # too late: the sender learns it was abandoned


class LateLandingStore(MessageStore):
    """Every other progress save lands, then answers too late (the caller's timeout fires)."""

    def __init__(self, inner: MessageStore) -> None:
        self.__dict__.update(inner.__dict__)
        self.calls = 0
        self.seen: list[dict[str, Any]] = []

    async def save_progress(
        self, message_id: ObjectId, saved: int, texts: tuple[str, str], new_ends: list[int]
    ) -> int | None:
        self.calls += 1
        stored = await super().save_progress(message_id, saved, texts, new_ends)
        doc = await self._messages.find_one({"_id": message_id})
        assert doc is not None
        self.seen.append(doc)
        if self.calls % 2:
            await asyncio.sleep(1.0)  # past WRITE_TIMEOUT: counted as failed, yet it landed
        return stored


async def test_progress_saves_append_once_even_when_a_write_lands_after_its_timeout(
    store: StallingStore,
) -> None:
    late = LateLandingStore(store)
    deltas = [f"d{i}," for i in range(60)]
    runner, _ = make_runner(late, ScriptedProvider(deltas, gap=0.01))
    started, draft = await start(runner, late, ObjectId())
    await asyncio.wait({started.finished}, timeout=10)
    assert late.calls >= 4
    text = "".join(deltas)
    for doc in late.seen:  # every saved state is an exact prefix, never a doubled append
        assert doc["seq"] == len(doc["seq_ends"])
        assert doc["content"] == text[: len(doc["content"])]
        assert doc["seq_ends"] == [len("".join(deltas[: i + 1])) for i in range(doc["seq"])]
    final = await late.get(draft.owner_id, draft.id)
    assert final is not None
    assert final.status is MessageStatus.COMPLETE
    assert final.content == text


class RefusingStore(StallingStore):
    """Refuses a reply's whole final record (as MongoDB refused an integer over 8 bytes in
    the provider's usage) but takes a status alone."""

    async def finish(self, message_id: ObjectId, fields: dict[str, Any]) -> bool:
        if "content" in fields:
            raise OverflowError("MongoDB can only handle up to 8-byte ints")
        return await super().finish(message_id, fields)


async def test_a_final_record_the_store_refuses_still_ends_the_reply() -> None:
    store = RefusingStore(Database.over(open_embedded_client(), "gen", embedded=True).messages)
    owner = ObjectId()
    runner, _ = make_runner(store, ScriptedProvider(["a", "b"], gap=0.02))
    started, draft = await start(runner, store, owner)
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    stored = await store.get(owner, draft.id)
    assert stored is not None
    assert stored.status is MessageStatus.INTERRUPTED
    assert "ab".startswith(stored.content)
    assert runner.running == 0


async def test_a_delta_that_is_not_text_ends_the_reply_as_an_error(
    store: StallingStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider bug (the OpenRouter client refuses such chunks) must still end the reply."""
    owner = ObjectId()
    runner, _ = make_runner(store, ScriptedProvider(["a", ["b"], "c"], gap=0.02))  # type: ignore[list-item]
    started, draft = await start(runner, store, owner)
    await asyncio.wait_for(asyncio.shield(started.task), timeout=5)
    stored = await store.get(owner, draft.id)
    assert stored is not None
    assert stored.status is MessageStatus.ERROR
    assert stored.error_code == "INTERNAL_SERVER_ERROR"
    assert "never retrieved" not in caplog.text
