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
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.errors import NotFound, Unauthenticated
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
from gql_chat.services.reply_start import ReadAhead, ReplyStarter
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
    """Every user is active unless `active` says otherwise; `checks` counts the checks."""

    def __init__(self) -> None:
        self.active = True
        self.checks = 0

    async def is_active(self, user_id: ObjectId) -> bool:
        self.checks += 1
        return self.active


@dataclass
class World:
    database: Database
    store: FailingStore
    provider: GatedProvider
    runner: GenerationRunner
    registry: ReplyRegistry[MessageRecord]
    conversations: ConversationService
    starter: ReplyStarter
    accounts: ActiveAccounts


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generation, "WRITE_TIMEOUT", 1.0)
    monkeypatch.setattr(generation, "FINAL_WRITE_BACKOFF", 0.01)


@pytest.fixture
def world() -> World:
    return build_world()


def build_world(*, concurrent_reads: bool | None = None) -> World:
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
    accounts = ActiveAccounts()
    starter = ReplyStarter(
        settings,
        database,
        cast(AccountService, accounts),
        conversations,
        PromptService(settings, presets, provider),
        AttachmentService(settings, database, FileUrls("secret", timedelta(hours=1))),
        runner,
        RateLimits(settings, open_storage(settings)),
        BudgetService(settings, database, provider.list_models),
        model_access,
        concurrent_reads=concurrent_reads,
    )
    return World(database, store, provider, runner, registry, conversations, starter, accounts)


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


async def test_a_send_reads_its_conversation_thread_and_owner_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `concurrent_reads` (a networked store), the three reads before the request leaves
    are in flight together: each waits here until all three have started, which reads made in
    turn never would. `reply_to` then reads the thread and checks the owner no more."""
    world = build_world(concurrent_reads=True)
    owner = await a_user(world)
    conversation = await world.conversations.create(owner, title="t")
    q1 = await add(world, owner, conversation.id, MessageRole.USER, "q1", None)
    a1 = await add(world, owner, conversation.id, MessageRole.ASSISTANT, "a1", q1)
    started: list[str] = []
    all_started = asyncio.Event()

    def together(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        async def waiting(*args: Any) -> Any:
            started.append(name)
            if len(started) == 3:
                all_started.set()
            async with asyncio.timeout(2):
                await all_started.wait()
            return await read(*args)

        return waiting

    monkeypatch.setattr(
        world.conversations, "get", together("conversation", world.conversations.get)
    )
    monkeypatch.setattr(world.store, "thread", together("thread", world.store.thread))
    monkeypatch.setattr(world.accounts, "is_active", together("owner", world.accounts.is_active))
    slot = await admitted(world, owner)
    try:
        found, read_ahead = await world.starter.read_conversation(owner, str(conversation.id))
        assert sorted(started) == ["conversation", "owner", "thread"]
        assert found.id == conversation.id
        assert read_ahead is not None

        async def no_second_read(*args: Any) -> Any:
            raise AssertionError("the thread was read again")

        monkeypatch.setattr(world.store, "thread", no_second_read)
        question = world.starter.draft_question(owner, conversation.id, "q2", a1.id)
        await world.starter.reply_to(
            owner, found, question, ResolvedModel("m", None), slot, new=True, read_ahead=read_ahead
        )
    finally:
        world.starter.release(slot)
    assert world.accounts.checks == 1
    assert world.provider.requests[0].messages == [
        PromptMessage("user", "q1"),
        PromptMessage("assistant", "a1"),
        PromptMessage("user", "q2"),
    ]
    await finish_replies(world)


async def test_on_the_embedded_store_the_reads_stay_in_turn(world: World) -> None:
    """No read-ahead: `reply_to` reads the thread and checks the owner itself."""
    owner = await a_user(world)
    conversation = await world.conversations.create(owner, title="t")
    slot = await admitted(world, owner)
    try:
        found, read_ahead = await world.starter.read_conversation(owner, str(conversation.id))
        assert (found.id, read_ahead, world.accounts.checks) == (conversation.id, None, 0)
        question = world.starter.draft_question(owner, conversation.id, "q", None)
        await world.starter.reply_to(
            owner, found, question, ResolvedModel("m", None), slot, new=True
        )
    finally:
        world.starter.release(slot)
    assert world.accounts.checks == 1
    await finish_replies(world)


@pytest.mark.parametrize("concurrent_reads", [True, False])
async def test_a_send_into_a_conversation_not_its_owners_is_not_found(
    concurrent_reads: bool,
) -> None:
    world = build_world(concurrent_reads=concurrent_reads)
    owner = await a_user(world)
    theirs = await world.conversations.create(await a_user(world), title="theirs")
    for conversation_id in (str(theirs.id), "not-an-id", str(ObjectId())):
        with pytest.raises(NotFound):
            await world.starter.read_conversation(owner, conversation_id)


async def test_a_removed_owner_is_refused_by_the_read_ahead() -> None:
    world = build_world(concurrent_reads=True)
    owner = await a_user(world)
    conversation = await world.conversations.create(owner, title="t")
    world.accounts.active = False
    with pytest.raises(Unauthenticated):
        await world.starter.read_conversation(owner, str(conversation.id))


async def test_a_missing_conversation_is_not_found_whichever_read_answers_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its owner removed too, and the owner's check answering first: still NOT_FOUND, as when
    the reads are made in turn, and only once every read has ended."""
    world = build_world(concurrent_reads=True)
    owner = await a_user(world)
    world.accounts.active = False
    ended: list[str] = []
    get = world.conversations.get

    async def slow_get(*args: Any) -> Any:
        await asyncio.sleep(0.05)
        try:
            return await get(*args)
        finally:
            ended.append("conversation")

    monkeypatch.setattr(world.conversations, "get", slow_get)
    with pytest.raises(NotFound):
        await world.starter.read_conversation(owner, str(ObjectId()))
    assert ended == ["conversation"]
    assert world.accounts.checks == 1


@st.composite
def stale_read_aheads(draw: st.DrawFn) -> tuple[list[int | None], int, list[bool]]:
    """A conversation's tree (each message's parent, by index; several roots are edits of the
    first question), the question's parent, and which messages the read-ahead saw."""
    size = draw(st.integers(1, 10))
    parents: list[int | None] = [None]
    for index in range(1, size):
        parents.append(draw(st.one_of(st.none(), st.integers(0, index - 1))))
    leaf = draw(st.integers(0, size - 1))
    seen = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return parents, leaf, seen


@hypothesis_settings(
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stale_read_aheads())
def test_the_request_carries_the_whole_path_whatever_the_read_ahead_missed(
    case: tuple[list[int | None], int, list[bool]],
) -> None:
    """A read-ahead may miss messages a concurrent send stored between its reads. The request
    still carries the whole path to the question's parent, and the thread is read again
    exactly when the read-ahead lacked part of that path."""
    asyncio.run(reply_over_a_stale_read_ahead(*case))


async def reply_over_a_stale_read_ahead(
    parents: list[int | None], leaf: int, seen: list[bool]
) -> None:
    world = build_world(concurrent_reads=True)
    owner = await a_user(world)
    conversation = await world.conversations.create(owner, title="t")
    roles = (MessageRole.USER, MessageRole.ASSISTANT)
    messages: list[MessageRecord] = []
    for index, parent in enumerate(parents):
        above = messages[parent] if parent is not None else None
        role = roles[index % 2]
        messages.append(await add(world, owner, conversation.id, role, f"m{index}", above))
    saw = {m.id for m, kept in zip(messages, seen, strict=True) if kept}
    full = await world.store.thread(owner, conversation.id)
    read_ahead = ReadAhead([turn for turn in full if turn.id in saw])
    path: list[int] = []
    at: int | None = leaf
    while at is not None:
        path.insert(0, at)
        at = parents[at]
    reads = 0
    thread = world.store.thread

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await thread(*args)

    world.store.thread = counted  # type: ignore[method-assign, assignment]
    slot = await admitted(world, owner)
    try:
        question = world.starter.draft_question(owner, conversation.id, "q", messages[leaf].id)
        await world.starter.reply_to(
            owner,
            conversation,
            question,
            ResolvedModel("m", None),
            slot,
            new=True,
            read_ahead=read_ahead,
        )
    finally:
        world.starter.release(slot)
    prompt_roles = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}
    assert world.provider.requests[0].messages == [
        *(PromptMessage(prompt_roles[roles[i % 2]], f"m{i}") for i in path),
        PromptMessage("user", "q"),
    ]
    assert reads == (0 if all(seen[i] for i in path) else 1)
    await finish_replies(world)


async def finish_replies(world: World) -> None:
    """Lets the replies started end, so nothing is left running."""
    world.provider.gate.set()
    for _ in range(500):
        if world.runner.running == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a reply is still running")
