"""`ReplyStarter.reply_to` hands a reply to the runner: the request is the thread's active path
(not a sibling branch), the assistant message is stored PENDING while the model has not
answered, and when a write fails the reply is abandoned and nothing is left PENDING (a PENDING
message would show a spinner forever). Embedded store, a gated fake provider, no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest
from bson import ObjectId
from pydantic import SecretStr

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.llm.types import (
    ChatRequest,
    Completion,
    ModelInfo,
    PromptMessage,
    ProviderEvent,
    TextDelta,
)
from gql_chat.services import generation
from gql_chat.services.accounts import AccountService
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.budgets import BudgetService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.file_urls import FileUrls
from gql_chat.services.folders import FolderService
from gql_chat.services.generation import GenerationRunner, SendSlot
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.prompts import PromptService, ResolvedModel
from gql_chat.services.rate_limits import RateLimits, open_storage
from gql_chat.services.reply_start import ReplyStarter
from gql_chat.store.database import Database
from gql_chat.store.embedded import open_embedded_client
from gql_chat.store.messages import MessageStore
from gql_chat.streams.replies import ReplyRegistry
from gql_chat.streams.user_events import UserEventBus


class GatedProvider:
    """Records each request and answers only once `gate` is set."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []
        self.gate = asyncio.Event()

    async def stream(
        self, request: ChatRequest, on_sent: Callable[[], None] | None = None
    ) -> AsyncIterator[ProviderEvent]:
        self.requests.append(request)
        if on_sent:
            on_sent()
        await self.gate.wait()
        yield TextDelta("an")
        yield TextDelta("swer")
        yield Completion(finish_reason="stop")

    async def list_models(self) -> list[ModelInfo]:
        return []


class FailingStore(MessageStore):
    """A message store whose insert of the assistant reply fails: before it reaches the
    database, or after it landed (a write that timed out yet was applied)."""

    def __init__(self, inner: MessageStore) -> None:
        self.__dict__.update(inner.__dict__)
        self.fail: str | None = None  # None, "before" or "after"

    async def add(self, message: MessageRecord) -> None:
        if message.role is MessageRole.ASSISTANT and self.fail == "before":
            raise ConnectionError("the database went away")
        await super().add(message)
        if message.role is MessageRole.ASSISTANT and self.fail == "after":
            raise ConnectionError("the answer was lost")


class ActiveAccounts:
    async def is_active(self, user_id: ObjectId) -> bool:
        return True


@dataclass
class World:
    database: Database
    store: FailingStore
    provider: GatedProvider
    runner: GenerationRunner
    registry: ReplyRegistry[MessageRecord]
    conversations: ConversationService
    starter: ReplyStarter


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generation, "WRITE_TIMEOUT", 1.0)
    monkeypatch.setattr(generation, "FINAL_WRITE_BACKOFF", 0.01)


@pytest.fixture
def world() -> World:
    settings = Settings.model_construct(
        openrouter_api_key=SecretStr("sk-test"),
        stream_flush_interval=0.01,
        stream_flush_bytes=1,
    )
    database = Database.over(open_embedded_client(), "reply_start", embedded=True)
    store = FailingStore(database.messages)
    database.messages = store
    provider = GatedProvider()
    registry: ReplyRegistry[MessageRecord] = ReplyRegistry()
    runner = GenerationRunner(settings, store, provider, registry)
    events = UserEventBus()
    model_access = ModelAccess(settings)
    presets = LlmConfigService(database, events, model_access)
    conversations = ConversationService(database, FolderService(database, events), presets, events)
    starter = ReplyStarter(
        settings,
        database,
        cast(AccountService, ActiveAccounts()),
        conversations,
        PromptService(settings, presets, provider),
        AttachmentService(settings, database, FileUrls("secret", timedelta(hours=1))),
        runner,
        RateLimits(settings, open_storage(settings)),
        BudgetService(settings, database, provider.list_models),
        model_access,
    )
    return World(database, store, provider, runner, registry, conversations, starter)


async def a_user(world: World) -> ObjectId:
    """An owner that exists (creates check their owner after their insert)."""
    user = await world.database.users.create(
        email=f"{ObjectId()}@example.com", display_name="owner", password_hash="unused"
    )
    return user.id


async def admitted(world: World, owner_id: ObjectId) -> SendSlot:
    """A slot for `owner_id`, admitted with the user as a request's sign-in check reads it."""
    owner = await world.database.users.get(owner_id)
    assert owner is not None
    return await world.starter.claim_slot(owner)


async def stored(world: World, owner: ObjectId, message_id: ObjectId) -> MessageRecord | None:
    return await world.store.get(owner, message_id)


async def add(
    world: World,
    owner: ObjectId,
    conversation_id: ObjectId,
    role: MessageRole,
    text: str,
    parent: MessageRecord | None,
) -> MessageRecord:
    message = world.store.draft(
        owner,
        conversation_id,
        role=role,
        content=text,
        status=MessageStatus.COMPLETE,
        parent_id=parent.id if parent else None,
    )
    await world.store.add(message)
    return message


async def test_the_request_is_the_active_path_and_the_reply_is_pending_until_it_streams(
    world: World,
) -> None:
    owner = await a_user(world)
    conversation = await world.conversations.create(owner, title="t")
    q1 = await add(world, owner, conversation.id, MessageRole.USER, "q1", None)
    a1 = await add(world, owner, conversation.id, MessageRole.ASSISTANT, "a1", q1)
    # A sibling answer on another branch: not part of this question's path.
    await add(world, owner, conversation.id, MessageRole.ASSISTANT, "other branch", q1)
    slot = await admitted(world, owner)
    question = world.starter.draft_question(owner, conversation.id, "q2", a1.id)
    try:
        result = await world.starter.reply_to(
            owner, conversation, question, ResolvedModel("m/x", None), slot, new=True
        )
    finally:
        world.starter.release(slot)

    assert [r.messages for r in world.provider.requests] == [
        [
            PromptMessage("user", "q1"),
            PromptMessage("assistant", "a1"),
            PromptMessage("user", "q2"),
        ]
    ]
    assert world.provider.requests[0].model == "m/x"
    assistant = await stored(world, owner, result.assistant_message.id)
    assert assistant is not None
    assert assistant.status is MessageStatus.PENDING
    assert (assistant.parent_id, assistant.model) == (question.id, "m/x")
    assert await stored(world, owner, question.id) == question
    assert result.conversation.active_leaf_id == assistant.id

    reply = world.registry.get(assistant.id)
    assert reply is not None
    world.provider.gate.set()
    deltas = [d.text async for d in reply.follow(0)]
    assert "".join(deltas) == "answer"
    finished = await stored(world, owner, assistant.id)
    assert finished is not None
    assert finished.status is MessageStatus.COMPLETE
    assert finished.content == "answer"


async def test_a_first_question_sends_only_itself(world: World) -> None:
    owner = await a_user(world)
    conversation = await world.conversations.create(owner)
    slot = await admitted(world, owner)
    question = world.starter.draft_question(owner, conversation.id, "hello", None)
    try:
        await world.starter.reply_to(
            owner, conversation, question, ResolvedModel("m", None), slot, new=True
        )
    finally:
        world.starter.release(slot)
    world.provider.gate.set()
    assert world.provider.requests[0].messages == [PromptMessage("user", "hello")]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_failed_write_abandons_the_reply_and_leaves_nothing_pending(
    world: World, when: str
) -> None:
    owner = await a_user(world)
    conversation = await world.conversations.create(owner)
    world.store.fail = when
    slot = await admitted(world, owner)
    question = world.starter.draft_question(owner, conversation.id, "q", None)
    try:
        with pytest.raises(ConnectionError):
            await world.starter.reply_to(
                owner, conversation, question, ResolvedModel("m", None), slot, new=True
            )
    finally:
        world.starter.release(slot)
    world.provider.gate.set()  # were it still running, it would now write an answer
    [started] = world.registry._replies.values()  # the reply the runner had begun
    for _ in range(100):
        if world.runner.running == 0:
            break
        await asyncio.sleep(0.01)
    assert world.runner.running == 0
    assert world.runner.active_count(owner) == 0
    assert started.closed  # followers end (without a final: there is no answer)
    assert started.deltas == []
    assert world.registry.get(started.message_id) is None

    docs: list[dict[str, Any]] = [
        d async for d in world.database.db["messages"].find({"owner_id": owner})
    ]
    assistants = [d for d in docs if d["role"] == MessageRole.ASSISTANT.value]
    assert all(d["status"] != MessageStatus.PENDING.value for d in docs)
    assert all(d["status"] != MessageStatus.STREAMING.value for d in docs)
    if when == "before":
        assert assistants == []
    else:
        [assistant] = assistants
        assert assistant["status"] == MessageStatus.INTERRUPTED.value
        assert not assistant.get("content")  # the abandoned reply wrote nothing


async def test_admission_takes_the_owner_the_request_already_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send's admission uses the user its sign-in check read (one round trip less before
    the request leaves for the model): it reads no user of its own."""
    owner_id = await a_user(world)
    owner = await world.database.users.get(owner_id)
    assert owner is not None
    reads: list[ObjectId] = []
    users_get = world.database.users.get

    async def counting_get(user_id: ObjectId) -> Any:
        reads.append(user_id)
        return await users_get(user_id)

    monkeypatch.setattr(world.database.users, "get", counting_get)
    slot = await world.starter.claim_slot(owner)
    world.starter.release(slot)
    assert (reads, slot.owner, slot.owner_id) == ([], owner, owner_id)
