"""Branches, automatic titles, live userEvents, usage rollups and export."""

from __future__ import annotations

import asyncio
import gc
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from graphql.execution.collect_fields import CollectedFields

from gql_chat.config import Settings
from gql_chat.services.titles import TITLE_PROMPT
from tests.conftest import LiveServer, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    GraphQLClient,
    SignedIn,
    create_conversation,
    create_folder,
    send_message,
    sign_up,
    ws_client,
)

THREAD = """query($id: ID!) { conversation(id: $id) { title messageCount
    messages(first: 100) { edges { node { id role content parentId siblingIds status } } } } }"""
REGENERATE = """mutation($id: ID!, $model: String) { regenerateMessage(messageId: $id, model: $model) {
    userMessage { id } assistantMessage { id parentId model } conversation { id } } }"""
EDIT = """mutation($id: ID!, $c: String!) { editMessage(messageId: $id, content: $c) {
    userMessage { id parentId content } assistantMessage { id parentId } } }"""
SWITCH = "mutation($id: ID!) { switchBranch(messageId: $id) { id messageCount } }"
MESSAGE_STATUS = "query($id: ID!) { message(id: $id) { status } }"


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


async def settle(user: SignedIn, message_id: str) -> None:
    for _ in range(500):
        status = (await user.ok(MESSAGE_STATUS, {"id": message_id}))["message"]["status"]
        if status not in ("PENDING", "STREAMING"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("reply never finished")


async def exchange(user: SignedIn, conversation: str, content: str) -> tuple[str, str]:
    sent = await send_message(user, content, conversationId=conversation)
    await settle(user, sent["assistantMessage"]["id"])
    return sent["userMessage"]["id"], sent["assistantMessage"]["id"]


async def thread(user: SignedIn, conversation: str) -> list[dict[str, Any]]:
    data = await user.ok(THREAD, {"id": conversation})
    return [edge["node"] for edge in data["conversation"]["messages"]["edges"]]


def chat_bodies(fake: FakeOpenRouter) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.body["messages"][0]["content"] != TITLE_PROMPT]


async def test_edit_branches_and_switching_back_restores_the_path(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user, title="Mine")
    q1, a1 = await exchange(user, conversation, "first")
    q2, a2 = await exchange(user, conversation, "second")
    q3, a3 = await exchange(user, conversation, "third")
    original = await thread(user, conversation)
    assert [m["id"] for m in original] == [q1, a1, q2, a2, q3, a3]

    edited = (await user.ok(EDIT, {"id": q2, "c": "second, reworded"}))["editMessage"]
    assert edited["userMessage"]["parentId"] == a1
    await settle(user, edited["assistantMessage"]["id"])
    branch = await thread(user, conversation)
    assert [m["id"] for m in branch] == [
        q1,
        a1,
        edited["userMessage"]["id"],
        edited["assistantMessage"]["id"],
    ]
    assert branch[2]["siblingIds"] == [q2, edited["userMessage"]["id"]]
    assert (await user.ok(THREAD, {"id": conversation}))["conversation"]["messageCount"] == 4

    # The edit's prompt held only the active path: nothing from the abandoned branch.
    prompt = chat_bodies(fake_openrouter)[-1]["messages"]
    assert [m["content"] for m in prompt if m["role"] == "user"] == ["first", "second, reworded"]

    switched = (await user.ok(SWITCH, {"id": q2}))["switchBranch"]
    assert switched["messageCount"] == 6
    restored = await thread(user, conversation)
    assert restored[2]["siblingIds"] == [
        q2,
        edited["userMessage"]["id"],
    ]  # the edit stays a sibling

    def without_siblings(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k != "siblingIds"} for m in messages]

    assert without_siblings(restored) == without_siblings(original)


async def test_regenerating_twice_gives_three_siblings(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user)
    question, answer = await exchange(user, conversation, "only question")
    second = (await user.ok(REGENERATE, {"id": answer, "model": "vendor/other"}))[
        "regenerateMessage"
    ]
    assert second["assistantMessage"]["parentId"] == question
    assert second["assistantMessage"]["model"] == "vendor/other"
    assert second["userMessage"]["id"] == question
    await settle(user, second["assistantMessage"]["id"])
    third = (await user.ok(REGENERATE, {"id": answer}))["regenerateMessage"]
    await settle(user, third["assistantMessage"]["id"])
    messages = await thread(user, conversation)
    assert [m["id"] for m in messages] == [question, third["assistantMessage"]["id"]]
    assert messages[1]["siblingIds"] == [
        answer,
        second["assistantMessage"]["id"],
        third["assistantMessage"]["id"],
    ]
    assert chat_bodies(fake_openrouter)[1]["model"] == "vendor/other"
    # Every regeneration was prompted with the same path: the question alone.
    for body in chat_bodies(fake_openrouter):
        assert [m["content"] for m in body["messages"]] == ["only question"]
    await user.ok(SWITCH, {"id": answer})
    assert [m["id"] for m in await thread(user, conversation)] == [question, answer]


async def test_branch_operations_check_their_input(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user)
    question, answer = await exchange(user, conversation, "q")
    wrong_kind = await user.execute(REGENERATE, {"id": question})
    assert wrong_kind.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "messageId"}
    wrong_kind = await user.execute(EDIT, {"id": answer, "c": "x"})
    assert wrong_kind.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "messageId"}
    empty = await user.execute(EDIT, {"id": question, "c": " "})
    assert empty.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "content"}
    stranger = await sign_up(user.gql)
    for document, variables in (
        (REGENERATE, {"id": answer}),
        (EDIT, {"id": question, "c": "x"}),
        (SWITCH, {"id": question}),
    ):
        assert (await stranger.execute(document, variables)).error_codes == ["NOT_FOUND"]
    assert [m["id"] for m in await thread(user, conversation)] == [question, answer]


async def test_automatic_title_after_the_first_reply(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["Sure."]), Reply(tokens=['"Lisbon', " day", ' trip."']))
    sent = await send_message(user, "Plan a day in Lisbon for me please, with food")
    assert sent["conversation"]["title"] == "Plan a day in Lisbon for me please,…"
    conversation = sent["conversation"]["id"]
    title = await wait_for_title(user, conversation, "Lisbon day trip")
    assert title == "Lisbon day trip"
    title_request = fake_openrouter.requests[-1].body
    assert title_request["messages"][0]["content"] == TITLE_PROMPT
    assert "Plan a day in Lisbon" in title_request["messages"][1]["content"]
    # Only the first reply titles the conversation.
    await exchange(user, conversation, "and dinner?")
    assert len(fake_openrouter.requests) == 3


async def wait_for_title(user: SignedIn, conversation: str, expected: str) -> str:
    for _ in range(300):
        title: str = (
            await user.ok(
                "query($id: ID!) { conversation(id: $id) { title } }", {"id": conversation}
            )
        )["conversation"]["title"]
        if title == expected:
            return title
        await asyncio.sleep(0.01)
    return title


async def test_a_failed_title_keeps_the_fallback(
    live_server: LiveServer,
    user: SignedIn,
    fake_openrouter: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["Answer"]), Reply(status=500))
    sent = await send_message(user, "What is the capital of Portugal")
    await settle(user, sent["assistantMessage"]["id"])
    for _ in range(100):
        if any("automatic title failed" in r.message for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    assert any("automatic title failed" in r.message for r in caplog.records)
    data = await user.ok(
        "query($id: ID!) { conversation(id: $id) { title } }", {"id": sent["conversation"]["id"]}
    )
    assert data["conversation"]["title"] == "What is the capital of Portugal"


async def test_a_users_own_title_is_never_replaced(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user, title="My title")
    await exchange(user, conversation, "hello")
    await asyncio.sleep(0.1)
    assert len(fake_openrouter.requests) == 1
    data = await user.ok(
        "query($id: ID!) { conversation(id: $id) { title } }", {"id": conversation}
    )
    assert data["conversation"]["title"] == "My title"


USER_EVENTS = (
    "subscription { userEvents { kind conversationId messageId folderId llmConfigId at } }"
)


async def open_event_stream(live_server: LiveServer, user: SignedIn, stack: Any) -> Any:
    ws = await stack.enter_async_context(ws_client(live_server.ws_url))
    assert (await ws.init({"Authorization": f"Bearer {user.token}"}))["type"] == "connection_ack"
    await ws.subscribe(USER_EVENTS)
    return ws


async def wait_for_subscribers(live_server: LiveServer, user: SignedIn, count: int) -> None:
    bus = live_server.app.state.services.events
    for _ in range(500):
        if bus.subscriber_count(ObjectId(user.user_id)) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscriptions never registered")


async def next_event(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout=5)
    assert message["type"] == "next", message
    event: dict[str, Any] = message["payload"]["data"]["userEvents"]
    return event


async def test_user_events_reach_every_device_of_that_user_only(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    other = await sign_up(user.gql)
    async with AsyncExitStack() as stack:
        phone = await open_event_stream(live_server, user, stack)
        laptop = await open_event_stream(live_server, user, stack)
        stranger = await open_event_stream(live_server, other, stack)
        await wait_for_subscribers(live_server, user, 2)
        await wait_for_subscribers(live_server, other, 1)

        folder = await create_folder(user, "Shared")
        for ws in (phone, laptop):
            event = await next_event(ws)
            assert event["kind"] == "FOLDER_CREATED"
            assert event["folderId"] == folder
            assert datetime.fromisoformat(event["at"]) <= datetime.now(UTC) + timedelta(seconds=1)

        sent = await send_message(user, "hello", folderId=folder)
        kinds = []
        while "MESSAGE_COMPLETED" not in kinds:
            kinds.append((await next_event(phone))["kind"])
        assert kinds[:4] == [
            "CONVERSATION_CREATED",
            "MESSAGE_CREATED",
            "MESSAGE_CREATED",
            "CONVERSATION_UPDATED",
        ]
        assert kinds[-1] == "MESSAGE_COMPLETED"
        await user.ok('mutation { createLlmConfig(input: {name: "p", model: "m"}) { id } }')
        await user.ok(
            "mutation($id: ID!) { deleteConversation(id: $id) }", {"id": sent["conversation"]["id"]}
        )
        remaining = []
        while "CONVERSATION_DELETED" not in remaining:
            remaining.append((await next_event(phone))["kind"])
        assert "LLM_CONFIG_CHANGED" in remaining

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stranger.receive(), timeout=0.3)


async def test_a_regeneration_announces_only_the_new_reply(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user)
    _, answer = await exchange(user, conversation, "only question")
    async with AsyncExitStack() as stack:
        ws = await open_event_stream(live_server, user, stack)
        await wait_for_subscribers(live_server, user, 1)
        regenerated = (await user.ok(REGENERATE, {"id": answer}))["regenerateMessage"]
        events = [await next_event(ws)]
        while events[-1]["kind"] != "MESSAGE_COMPLETED":
            events.append(await next_event(ws))
    created = [e["messageId"] for e in events if e["kind"] == "MESSAGE_CREATED"]
    assert created == [regenerated["assistantMessage"]["id"]]  # the question already existed
    assert events[-1]["messageId"] == regenerated["assistantMessage"]["id"]


async def test_user_events_need_authentication(live_server: LiveServer) -> None:
    """An anonymous `connection_init` is refused (4403) before any subscription runs."""
    from websockets.exceptions import ConnectionClosed

    async with ws_client(live_server.ws_url) as ws:
        await ws.send({"type": "connection_init", "payload": {}})
        await ws.subscribe(USER_EVENTS)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.receive(), timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


USAGE = """query($group: UsageGroup!, $from: DateTime, $to: DateTime) {
    usageSummary(groupBy: $group, from: $from, to: $to) {
        key messages promptTokens completionTokens cost } }"""


async def test_usage_rollups_add_up_to_the_messages(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(
        tokens=["x"], usage={"prompt_tokens": 10, "completion_tokens": 3, "cost": 0.001}
    )
    first = await create_conversation(user, title="one")
    second = await create_conversation(user, title="two")
    await exchange(user, first, "a")
    await exchange(user, first, "b")
    sent = await send_message(user, "c", conversationId=second, model="vendor/other")
    await settle(user, sent["assistantMessage"]["id"])
    fake_openrouter.enqueue(
        Reply(tokens=["y"], usage={"prompt_tokens": 5, "completion_tokens": 1, "cost": None})
    )
    await exchange(user, second, "d")

    by_model = {r["key"]: r for r in (await user.ok(USAGE, {"group": "MODEL"}))["usageSummary"]}
    assert by_model["openai/gpt-4o-mini"] == {
        "key": "openai/gpt-4o-mini",
        "messages": 3,
        "promptTokens": 25,
        "completionTokens": 7,
        # The reply without a reported cost is priced from the models list (estimated):
        # 5 prompt tokens at 0.00000015 and 1 completion token at 0.0000006.
        "cost": pytest.approx(0.002 + 0.00000135),
    }
    assert by_model["vendor/other"]["messages"] == 1
    by_conversation = {
        r["key"]: r for r in (await user.ok(USAGE, {"group": "CONVERSATION"}))["usageSummary"]
    }
    assert by_conversation[first]["promptTokens"] == 20
    assert by_conversation[second]["promptTokens"] == 15
    by_day = (await user.ok(USAGE, {"group": "DAY"}))["usageSummary"]
    assert len(by_day) == 1
    assert by_day[0]["key"] == datetime.now(UTC).strftime("%Y-%m-%d")

    # The rollups equal the sum of the per-message figures.
    conversations = await user.ok(
        "{ conversations { edges { node { id usage { promptTokens completionTokens cost } } } } }"
    )
    per_conversation = {
        e["node"]["id"]: e["node"]["usage"] for e in conversations["conversations"]["edges"]
    }
    for key, row in by_conversation.items():
        assert row["promptTokens"] == per_conversation[key]["promptTokens"]
        assert row["completionTokens"] == per_conversation[key]["completionTokens"]
        assert row["cost"] == pytest.approx(per_conversation[key]["cost"])
    assert sum(r["messages"] for r in by_day) == 4

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await user.ok(USAGE, {"group": "DAY", "from": future}))["usageSummary"] == []
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert (await user.ok(USAGE, {"group": "DAY", "to": past}))["usageSummary"] == []
    bad = await user.execute(USAGE, {"group": "DAY", "from": future, "to": past})
    assert bad.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "to"}
    stranger = await sign_up(user.gql)
    assert (await stranger.ok(USAGE, {"group": "MODEL"}))["usageSummary"] == []


async def test_export_the_active_branch(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(tokens=["Answer ", "text"])
    conversation = await create_conversation(user, title="Exported")
    question, answer = await exchange(user, conversation, "Question one")
    edited = (await user.ok(EDIT, {"id": question, "c": "Question two"}))["editMessage"]
    await settle(user, edited["assistantMessage"]["id"])
    export = "query($id: ID!, $f: ExportFormat!) { exportConversation(id: $id, format: $f) }"

    markdown = (await user.ok(export, {"id": conversation, "f": "MARKDOWN"}))["exportConversation"]
    assert markdown.startswith("# Exported\n")
    assert "Question two" in markdown
    assert "Question one" not in markdown
    assert "## Assistant" in markdown
    assert "model openai/gpt-4o-mini, 16 tokens, $0.000420" in markdown

    document = json.loads(
        (await user.ok(export, {"id": conversation, "f": "JSON"}))["exportConversation"]
    )
    assert document["title"] == "Exported"
    assert [m["role"] for m in document["messages"]] == ["USER", "ASSISTANT"]
    assert document["messages"][1]["content"] == "Answer text"
    assert document["messages"][1]["usage"]["cost"] == pytest.approx(0.00042)
    assert document["messages"][1]["model"] == "openai/gpt-4o-mini"
    assert answer not in [m["id"] for m in document["messages"]]
    stranger = await sign_up(user.gql)
    assert (await stranger.execute(export, {"id": conversation, "f": "JSON"})).error_codes == [
        "NOT_FOUND"
    ]


def live_collected_field_sets() -> int:
    gc.collect()
    return sum(type(o) is CollectedFields for o in gc.get_objects())


async def test_a_long_event_stream_does_not_grow_with_its_events(
    live_server: LiveServer, user: SignedIn
) -> None:
    """graphql-core kept one memo entry per delivered event alive for the subscription's whole
    life; after the first few events, more events must not mean more memory."""
    async with AsyncExitStack() as stack:
        ws = await open_event_stream(live_server, user, stack)
        await wait_for_subscribers(live_server, user, 1)
        for index in range(5):
            await create_folder(user, f"warm-up {index}")
            assert (await next_event(ws))["kind"] == "FOLDER_CREATED"
        before = live_collected_field_sets()
        for index in range(40):
            await create_folder(user, f"folder {index}")
            assert (await next_event(ws))["kind"] == "FOLDER_CREATED"
        assert live_collected_field_sets() - before < 10


async def test_usage_totals_saturate_and_unbelievable_reports_are_not_stored(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """Sums past GraphQL's 32-bit Int saturate instead of failing the whole list; a report no
    reply can have (3e9 tokens, a negative count, a cost of NaN) is dropped, the reply kept."""
    big = {"prompt_tokens": 1_500_000_000, "completion_tokens": 1_000_000_000, "cost": 1.5}
    fake_openrouter.default = Reply(tokens=["x"], usage=big)
    conversation = await create_conversation(user, title="heavy")
    await exchange(user, conversation, "a")
    await exchange(user, conversation, "b")
    for unbelievable in (
        {"prompt_tokens": 3_000_000_000, "completion_tokens": 1},
        {"prompt_tokens": -5, "completion_tokens": 1},
        {"prompt_tokens": 1, "completion_tokens": 1, "cost": "NaN"},
        {"prompt_tokens": 1, "completion_tokens": 1, "cost": 1.5e308},  # two summed to inf
        {"prompt_tokens": 1, "completion_tokens": 1, "cost": 1.5e308},
    ):
        fake_openrouter.enqueue(Reply(tokens=["y"], usage=unbelievable))
        _, reply = await exchange(user, conversation, "c")
        message = await user.ok(
            "query($id: ID!) { message(id: $id) { status content usage { promptTokens } } }",
            {"id": reply},
        )
        assert message["message"] == {"status": "COMPLETE", "content": "y", "usage": None}

    totals = await user.ok(
        "{ conversations { edges { node { usage { promptTokens totalTokens cost } } } } }"
    )
    (edge,) = totals["conversations"]["edges"]
    assert edge["node"]["usage"] == {
        "promptTokens": 2**31 - 1,
        "totalTokens": 2**31 - 1,
        "cost": pytest.approx(3.0),
    }
    (row,) = (await user.ok(USAGE, {"group": "CONVERSATION"}))["usageSummary"]
    assert (row["promptTokens"], row["completionTokens"]) == (2**31 - 1, 2_000_000_000)
