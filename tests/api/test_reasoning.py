"""Reasoning through the public API: streamed apart from the answer (`reasoningDelta`), numbered
with it by one `seq` so a resume mid-reasoning gets every event once, kept in
`Message.reasoning`, never sent back to the model, asked for with a reasoning effort (preset or
send), and exported."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gql_chat.config import Settings
from gql_chat.services.titles import TITLE_PROMPT
from tests.conftest import LiveServer, live_server_of, make_settings, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, create_preset, sign_up, ws_client

STREAM = """subscription($id: ID!, $after: Int) { messageStream(messageId: $id, afterSeq: $after) {
    seq delta reasoningDelta status done
    message { id content reasoning status usage { completionTokens reasoningTokens } } } }"""
SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
    conversation { id } assistantMessage { id } } }"""
MESSAGE = "query($id: ID!) { message(id: $id) { content reasoning } }"
EXPORT = "query($id: ID!, $f: ExportFormat!) { exportConversation(id: $id, format: $f) }"

# Reasoning first, an answer that starts, more reasoning, the rest of the answer.
TOKENS = [f"think{i} " for i in range(6)] + ["The ", "answer "] + ["wait… "] + ["is 42."]
REASONING_AT = frozenset({0, 1, 2, 3, 4, 5, 8})
REASONING = "".join(t for i, t in enumerate(TOKENS) if i in REASONING_AT)
ANSWER = "".join(t for i, t in enumerate(TOKENS) if i not in REASONING_AT)


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


def thinking_reply(**overrides: Any) -> Reply:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 21},
    }
    values: dict[str, Any] = {
        "tokens": TOKENS,
        "reasoning_at": REASONING_AT,
        "token_delay": 0.02,
        "usage": usage,
    }
    return Reply(**{**values, **overrides})


async def follow(
    live_server: LiveServer, user: SignedIn, reply: str, after: int = 0, stop: int | None = None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe(STREAM, {"id": reply, "after": after})
        while True:
            message = await asyncio.wait_for(ws.receive(), timeout=10)
            assert message["type"] == "next", message
            event = message["payload"]["data"]["messageStream"]
            events.append(event)
            if event["done"] or (stop is not None and len(events) >= stop):
                return events


QUESTION = "What is the answer?"


async def send(user: SignedIn, content: str = QUESTION, **fields: Any) -> tuple[str, str]:
    data = await user.ok(SEND, {"input": {"content": content, **fields}})
    return data["sendMessage"]["conversation"]["id"], data["sendMessage"]["assistantMessage"]["id"]


async def test_reasoning_streams_apart_from_the_answer_and_resumes_exactly_once(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt[QUESTION] = thinking_reply()
    _, reply = await send(user)
    first = await follow(live_server, user, reply, stop=3)  # dropped mid-reasoning
    rest = await follow(live_server, user, reply, after=first[-1]["seq"])
    events, done = first + rest[:-1], rest[-1]

    assert [e["seq"] for e in events] == list(range(1, len(TOKENS) + 1))
    for index, event in enumerate(events):
        if index in REASONING_AT:
            assert (event["reasoningDelta"], event["delta"]) == (TOKENS[index], "")
        else:
            assert (event["delta"], event["reasoningDelta"]) == (TOKENS[index], "")
    assert done["done"]
    assert done["status"] == "COMPLETE"
    assert (done["delta"], done["reasoningDelta"]) == ("", "")
    final = done["message"]
    assert (final["content"], final["reasoning"]) == (ANSWER, REASONING)
    assert final["usage"] == {"completionTokens": 30, "reasoningTokens": 21}
    stored = (await user.ok(MESSAGE, {"id": reply}))["message"]
    assert (stored["content"], stored["reasoning"]) == (ANSWER, REASONING)


async def test_a_replay_from_the_store_keeps_each_events_kind(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt[QUESTION] = thinking_reply(token_delay=0)
    _, reply = await send(user)
    await follow(live_server, user, reply)  # to the end: the reply is now only in the store
    replayed = await follow(live_server, user, reply, after=4)
    assert [(e["seq"], e["reasoningDelta"], e["delta"]) for e in replayed[:-1]] == [
        (seq, *((TOKENS[seq - 1], "") if seq - 1 in REASONING_AT else ("", TOKENS[seq - 1])))
        for seq in range(5, len(TOKENS) + 1)
    ]


async def test_the_effort_is_sent_and_reasoning_is_never_sent_back(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    preset = await create_preset(user, reasoningEffort="HIGH")
    fake_openrouter.by_prompt[QUESTION] = thinking_reply(token_delay=0)
    conversation, reply = await send(user, llmConfigId=preset)
    await follow(live_server, user, reply)
    _, second = await send(user, conversationId=conversation, reasoningEffort="NONE")
    await follow(live_server, user, second)
    _, third = await send(user, model="meta/free")  # no preset, no effort: nothing sent
    await follow(live_server, user, third)

    bodies = [r.body for r in fake_openrouter.requests]
    chat = [b for b in bodies if b["messages"][0]["content"] != TITLE_PROMPT]
    assert chat[0]["reasoning"] == {"effort": "high"}
    assert chat[1]["reasoning"] == {"effort": "none"}
    assert "reasoning" not in chat[2]
    history = chat[1]["messages"]
    assert {"role": "assistant", "content": ANSWER} in history
    assert all(REASONING.split()[0] not in m["content"] for m in history)


async def test_reasoning_details_alone_are_read_and_encrypted_reasoning_shows_nothing(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt[QUESTION] = thinking_reply(token_delay=0, reasoning_details_only=True)
    fake_openrouter.by_prompt["Think quietly"] = thinking_reply(
        token_delay=0, hidden_reasoning=True
    )
    _, reply = await send(user)
    done = (await follow(live_server, user, reply))[-1]["message"]
    assert (done["content"], done["reasoning"]) == (ANSWER, REASONING)

    _, hidden = await send(user, "Think quietly")  # a model that reasons without showing it
    events = await follow(live_server, user, hidden)
    assert [e["seq"] for e in events[:-1]] == list(range(1, len(TOKENS) - len(REASONING_AT) + 1))
    assert all(e["reasoningDelta"] == "" for e in events)
    final = events[-1]["message"]
    assert (final["content"], final["reasoning"]) == (ANSWER, None)
    assert final["usage"]["reasoningTokens"] == 21


async def test_presets_keep_an_effort_and_a_null_clears_it(user: SignedIn) -> None:
    query = """mutation($id: ID!, $input: UpdateLlmConfigInput!) {
        updateLlmConfig(id: $id, input: $input) { reasoningEffort } }"""
    preset = await create_preset(user, reasoningEffort="XHIGH")
    read = "query($id: ID!) { llmConfig(id: $id) { reasoningEffort } }"
    assert (await user.ok(read, {"id": preset}))["llmConfig"]["reasoningEffort"] == "XHIGH"
    changed = await user.ok(query, {"id": preset, "input": {"reasoningEffort": "MINIMAL"}})
    assert changed["updateLlmConfig"]["reasoningEffort"] == "MINIMAL"
    kept = await user.ok(query, {"id": preset, "input": {"name": "renamed"}})
    assert kept["updateLlmConfig"]["reasoningEffort"] == "MINIMAL"
    cleared = await user.ok(query, {"id": preset, "input": {"reasoningEffort": None}})
    assert cleared["updateLlmConfig"]["reasoningEffort"] is None
    refused = await user.execute(query, {"id": preset, "input": {"reasoningEffort": "MAX"}})
    assert refused.data is None
    assert refused.errors


async def test_models_say_what_they_read_and_whether_they_reason(user: SignedIn) -> None:
    models = (await user.ok("{ models { id inputModalities supportsReasoning } }"))["models"]
    by_id = {m["id"]: m for m in models}
    assert by_id["openai/gpt-4o-mini"]["inputModalities"] == ["text", "image", "file"]
    assert by_id["openai/gpt-4o-mini"]["supportsReasoning"] is True
    assert by_id["meta/free"] == {
        "id": "meta/free",
        "inputModalities": ["text"],
        "supportsReasoning": False,
    }


async def test_exports_carry_the_reasoning(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt[QUESTION] = thinking_reply(token_delay=0)
    conversation, reply = await send(user)
    await follow(live_server, user, reply)
    exported = await user.ok(EXPORT, {"id": conversation, "f": "JSON"})
    answer = json.loads(exported["exportConversation"])["messages"][-1]
    assert (answer["content"], answer["reasoning"]) == (ANSWER, REASONING)
    assert answer["usage"]["reasoningTokens"] == 21
    markdown = (await user.ok(EXPORT, {"id": conversation, "f": "MARKDOWN"}))["exportConversation"]
    folded = f"<details>\n<summary>Reasoning</summary>\n\n{REASONING}\n\n</details>\n\n{ANSWER}"
    assert folded in markdown


async def test_the_offline_model_reasons_when_asked_so_clients_can_be_built_offline() -> None:
    async with (
        live_server_of(make_settings(offline_token_delay=0)) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        _, plain = await send(user)
        events = await follow(server, user, plain)
        assert all(e["reasoningDelta"] == "" for e in events)
        assert events[-1]["message"]["reasoning"] is None

        _, thought = await send(user, reasoningEffort="LOW")
        events = await follow(server, user, thought)
        final = events[-1]["message"]
        assert final["reasoning"] == (
            "Reasoning effort low. The last message has 4 words; I will quote it back."
        )
        assert "".join(e["reasoningDelta"] for e in events) == final["reasoning"]
        first_answer = next(i for i, e in enumerate(events) if e["delta"])
        assert all(e["reasoningDelta"] for e in events[:first_answer])
        assert final["usage"]["reasoningTokens"] > 0
        again = await follow(server, user, (await send(user, reasoningEffort="LOW"))[1])
        assert again[-1]["message"]["reasoning"] == final["reasoning"]  # deterministic
