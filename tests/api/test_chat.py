"""Chat replies end to end: sendMessage over HTTP, messageStream over websockets, a real uvicorn
server and the fake OpenRouter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from gql_chat.app import create_app
from gql_chat.config import Settings
from gql_chat.services.titles import TITLE_PROMPT
from gql_chat.store.embedded import open_embedded_client
from tests.conftest import LiveServer, openrouter_settings, serve, stored_documents
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    STREAM,
    GraphQLClient,
    SignedIn,
    create_conversation,
    create_preset,
    follow_reply,
    send_message,
    sign_up,
    subscription_errors,
)

TOKENS = [f"tok{i} " for i in range(30)]
MESSAGE = """query($id: ID!) { message(id: $id) {
    id role content status model parentId siblingIds conversationId
    usage { promptTokens completionTokens totalTokens cost } error { code message } } }"""


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


async def wait_for_status(user: SignedIn, message_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(400):
        message: dict[str, Any] = (await user.ok(MESSAGE, {"id": message_id}))["message"]
        if message["status"] in statuses:
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {message_id} never reached {statuses}")


def chat_requests(fake: FakeOpenRouter) -> list[dict[str, Any]]:
    """Reply requests only, not the automatic-title ones."""
    return [r.body for r in fake.requests if r.body["messages"][0]["content"] != TITLE_PROMPT]


def joined(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events)


async def test_a_reply_streams_in_order_and_is_stored(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.005, comments=2))
    sent = await send_message(user, "Tell me a story about tokens")
    assert sent["userMessage"]["status"] == "COMPLETE"
    assert sent["assistantMessage"]["status"] in ("PENDING", "STREAMING")
    assert sent["assistantMessage"]["parentId"] == sent["userMessage"]["id"]
    assert sent["conversation"]["title"] == "Tell me a story about tokens"

    events = await follow_reply(live_server.ws_url, user.token, sent["assistantMessage"]["id"])
    deltas, done = events[:-1], events[-1]
    assert [e["seq"] for e in deltas] == list(range(1, len(TOKENS) + 1))
    assert joined(deltas) == "".join(TOKENS)
    assert done["done"] is True
    assert done["seq"] == 0
    assert done["delta"] == ""
    assert done["status"] == "COMPLETE"
    final = done["message"]
    assert final["content"] == "".join(TOKENS)
    assert final["model"] == "openai/gpt-4o-mini"
    assert final["usage"] == {
        "promptTokens": 12,
        "completionTokens": 4,
        "totalTokens": 16,
        "cost": 0.00042,
    }

    stored = (await user.ok(MESSAGE, {"id": sent["assistantMessage"]["id"]}))["message"]
    assert stored["content"] == "".join(TOKENS)
    assert stored["siblingIds"] == [stored["id"]]


async def test_disconnect_then_resume_delivers_each_delta_exactly_once(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.02))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    first = await follow_reply(live_server.ws_url, user.token, message_id, stop_after=7)
    assert [e["seq"] for e in first] == list(range(1, 8))
    await asyncio.sleep(0.1)  # the reply goes on while nobody listens
    rest = await follow_reply(
        live_server.ws_url, user.token, message_id, after_seq=first[-1]["seq"]
    )
    seqs = [e["seq"] for e in first + rest[:-1]]
    assert seqs == list(range(1, len(TOKENS) + 1))
    assert joined(first + rest) == rest[-1]["message"]["content"] == "".join(TOKENS)


async def test_resuming_a_finished_reply_replays_from_the_store(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS[:10]))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    await wait_for_status(user, message_id, "COMPLETE")
    tail = await follow_reply(live_server.ws_url, user.token, message_id, after_seq=6)
    assert [e["seq"] for e in tail] == [7, 8, 9, 10, 0]
    assert joined(tail) == "".join(TOKENS[6:10])
    only_done = await follow_reply(live_server.ws_url, user.token, message_id, after_seq=10)
    assert len(only_done) == 1
    assert only_done[0]["done"] is True
    assert only_done[0]["message"]["content"] == "".join(TOKENS[:10])


async def test_two_subscribers_see_identical_streams(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.01, first_delay=0.1))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    one, two = await asyncio.gather(
        follow_reply(live_server.ws_url, user.token, message_id),
        follow_reply(live_server.ws_url, user.token, message_id),
    )
    assert one == two
    assert joined(one) == "".join(TOKENS)


async def test_stop_keeps_the_partial_text_and_closes_upstream(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.05))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    first = await follow_reply(live_server.ws_url, user.token, message_id, stop_after=3)
    stop = "mutation($id: ID!) { stopGeneration(messageId: $id) { id status content } }"
    stopped = (await user.ok(stop, {"id": message_id}))["stopGeneration"]
    assert stopped["status"] == "STOPPED"
    assert stopped["content"].startswith(joined(first))
    assert len(stopped["content"]) < len("".join(TOKENS))
    await asyncio.wait_for(fake_openrouter.disconnected.wait(), timeout=5)

    again = (await user.ok(stop, {"id": message_id}))["stopGeneration"]
    assert again == stopped
    events = await follow_reply(live_server.ws_url, user.token, message_id)
    assert events[-1]["status"] == "STOPPED"
    assert joined(events) == stopped["content"]


async def test_provider_failures_end_the_reply_with_an_error(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(
        Reply(status=401, error_body={"error": {"message": "bad key sk-or-test"}})
    )
    message_id = (await send_message(user))["assistantMessage"]["id"]
    events = await follow_reply(live_server.ws_url, user.token, message_id)
    final = events[-1]["message"]
    assert final["status"] == "ERROR"
    assert final["error"]["code"] == "UPSTREAM_ERROR"
    assert "sk-or" not in final["error"]["message"]

    fake_openrouter.enqueue(Reply(tokens=["partial ", "text ", "lost"], error_after=2))
    message_id = (await send_message(user, "again"))["assistantMessage"]["id"]
    events = await follow_reply(live_server.ws_url, user.token, message_id)
    assert events[-1]["message"]["status"] == "ERROR"
    assert events[-1]["message"]["content"] == "partial text "

    fake_openrouter.enqueue(*(Reply(status=429) for _ in range(3)))
    message_id = (await send_message(user, "third"))["assistantMessage"]["id"]
    events = await follow_reply(live_server.ws_url, user.token, message_id)
    assert events[-1]["message"]["error"]["code"] == "UPSTREAM_RATE_LIMITED"


async def test_concurrency_limit_and_idempotency(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(tokens=["slow"] * 100, token_delay=0.05)
    first = await send_message(user, "one", clientMessageId="key-1")
    retried = await send_message(user, "one", clientMessageId="key-1")
    assert retried["userMessage"]["id"] == first["userMessage"]["id"]
    assert retried["assistantMessage"]["id"] == first["assistantMessage"]["id"]
    assert retried["conversation"]["id"] == first["conversation"]["id"]
    await send_message(user, "two")
    await send_message(user, "three")
    over = await user.execute(
        'mutation { sendMessage(input: {content: "four"}) { userMessage { id } } }'
    )
    assert over.error_codes == ["RATE_LIMITED"]
    assert over.errors[0]["extensions"]["retryAfter"] >= 1
    await asyncio.sleep(0.05)
    assert len(fake_openrouter.requests) == 3  # the retry started nothing
    # Another user is not affected.
    other = await sign_up(user.gql)
    assert (await send_message(other, "hello"))["assistantMessage"]["status"] in (
        "PENDING",
        "STREAMING",
    )
    for message in (first,):
        await user.ok(
            "mutation($id: ID!) { stopGeneration(messageId: $id) { id } }",
            {"id": message["assistantMessage"]["id"]},
        )
    assert await send_message(user, "four")


async def test_concurrent_retries_with_one_key_create_one_message(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """Each retry starts its reply before storing anything; the losers' replies are abandoned:
    their upstream requests are closed and none of their messages is written."""
    fake_openrouter.default = Reply(tokens=["slow "] * 20, first_delay=0.1, token_delay=0.02)
    results = await asyncio.gather(
        *(send_message(user, "same", clientMessageId="race") for _ in range(3))
    )
    assert len({r["userMessage"]["id"] for r in results}) == 1
    assert len({r["assistantMessage"]["id"] for r in results}) == 1
    assert len({r["conversation"]["id"] for r in results}) == 1
    listed = await user.ok("{ conversations { totalCount edges { node { messageCount } } } }")
    assert listed["conversations"]["totalCount"] == 1
    assert listed["conversations"]["edges"][0]["node"]["messageCount"] == 2
    losers = len(chat_requests(fake_openrouter)) - 1
    for _ in range(100):
        if fake_openrouter.disconnects == losers:
            break
        await asyncio.sleep(0.02)
    assert fake_openrouter.disconnects == losers
    final = await wait_for_status(user, results[0]["assistantMessage"]["id"], "COMPLETE")
    assert final["content"] == "slow " * 20


async def test_content_and_ownership_checks(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    for content in ("", "   ", "x" * 100_001):
        result = await user.execute(
            "mutation($c: String!) { sendMessage(input: {content: $c}) { userMessage { id } } }",
            {"c": content},
        )
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "content"}
    message_id = (await send_message(user))["assistantMessage"]["id"]
    stranger = await sign_up(user.gql)
    for query in (
        "query($id: ID!) { message(id: $id) { id } }",
        "mutation($id: ID!) { stopGeneration(messageId: $id) { id } }",
    ):
        for target in (message_id, str(ObjectId()), "junk"):
            assert (await stranger.execute(query, {"id": target})).error_codes == ["NOT_FOUND"]
    foreign = await stranger.execute(
        'mutation($c: ID!) { sendMessage(input: {content: "hi", conversationId: $c}) { userMessage { id } } }',
        {"c": (await user.ok(MESSAGE, {"id": message_id}))["message"]["conversationId"]},
    )
    assert foreign.error_codes == ["NOT_FOUND"]
    errors = await subscription_errors(
        live_server.ws_url, stranger.token, STREAM, {"id": message_id, "after": 0}
    )
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    errors = await subscription_errors(
        live_server.ws_url, user.token, STREAM, {"id": message_id, "after": -1}
    )
    assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "afterSeq"}


async def test_subscriptions_need_a_signed_in_connection(
    live_server: LiveServer, user: SignedIn
) -> None:
    """An anonymous `connection_init` is refused (4403), so no subscription runs without a
    user (tests/api/test_websocket_limits.py covers the refusal itself)."""
    from websockets.exceptions import ConnectionClosed

    from tests.support import ws_client

    async with ws_client(live_server.ws_url) as ws:
        await ws.send({"type": "connection_init", "payload": {}})
        await ws.subscribe(STREAM, {"id": str(ObjectId()), "after": 0})
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.receive(), timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_model_resolution_and_the_prompt(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    default = await create_preset(user, "default", model="vendor/default-model", isDefault=True)
    special = await create_preset(
        user,
        "special",
        model="vendor/special",
        systemPrompt="You are terse.",
        temperature=0.1,
        topP=0.5,
        maxTokens=99,
    )
    assert default

    async def sent_model(**fields: Any) -> dict[str, Any]:
        message_id = (await send_message(user, **fields))["assistantMessage"]["id"]
        await wait_for_status(user, message_id, "COMPLETE")
        return chat_requests(fake_openrouter)[-1]

    assert (await sent_model())["model"] == "vendor/default-model"
    body = await sent_model(llmConfigId=special)
    assert body["model"] == "vendor/special"
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.1, 0.5, 99)
    assert (await sent_model(llmConfigId=special, model="vendor/override"))[
        "model"
    ] == "vendor/override"

    on_special = await create_conversation(user, llmConfigId=special)
    assert (await sent_model(conversationId=on_special))["model"] == "vendor/special"
    await user.ok(
        "mutation($id: ID!) { updateLlmConfig(id: $id, input: {isDefault: false}) { id } }",
        {"id": default},
    )
    assert (await sent_model())["model"] == "openai/gpt-4o-mini"  # GQL_CHAT_DEFAULT_MODEL

    # The prompt carries the conversation so far, oldest first.
    conversation = await create_conversation(user)
    await sent_model(conversationId=conversation, content="first question")
    body = await sent_model(conversationId=conversation, content="second question")
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == "first question"
    assert body["messages"][-1]["content"] == "second question"


async def test_models_query(user: SignedIn, fake_openrouter: FakeOpenRouter) -> None:
    data = await user.ok("{ models { id name contextLength promptPrice completionPrice } }")
    assert data["models"][0] == {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "contextLength": 128000,
        "promptPrice": 1.5e-07,
        "completionPrice": 6e-07,
    }


async def test_conversation_messages_counts_and_usage(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    conversation = await create_conversation(user)
    ids = []
    for i in range(3):
        sent = await send_message(user, f"question {i}", conversationId=conversation)
        await wait_for_status(user, sent["assistantMessage"]["id"], "COMPLETE")
        ids += [sent["userMessage"]["id"], sent["assistantMessage"]["id"]]
    query = """query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
        conversation(id: $id) { messageCount lastMessageAt
            usage { promptTokens completionTokens totalTokens cost }
            messages(first: $first, after: $after, last: $last, before: $before) {
                totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
                edges { cursor node { id } } } } }"""

    async def page(**args: Any) -> dict[str, Any]:
        data: dict[str, Any] = (await user.ok(query, {"id": conversation, **args}))["conversation"]
        return data

    everything = await page()
    assert everything["messageCount"] == 6
    assert everything["lastMessageAt"] is not None
    assert everything["usage"] == {
        "promptTokens": 36,
        "completionTokens": 12,
        "totalTokens": 48,
        "cost": pytest.approx(0.00126),
    }
    assert [e["node"]["id"] for e in everything["messages"]["edges"]] == ids

    newest = (await page(last=2))["messages"]
    assert [e["node"]["id"] for e in newest["edges"]] == ids[-2:]
    assert newest["pageInfo"]["hasPreviousPage"] is True
    assert newest["pageInfo"]["hasNextPage"] is False
    older = (await page(last=2, before=newest["pageInfo"]["startCursor"]))["messages"]
    assert [e["node"]["id"] for e in older["edges"]] == ids[2:4]
    forward = (await page(first=4, after=older["edges"][0]["cursor"]))["messages"]
    assert [e["node"]["id"] for e in forward["edges"]] == ids[3:]
    assert forward["pageInfo"]["hasNextPage"] is False
    bad = await user.execute(query, {"id": conversation, "after": "bogus"})
    assert bad.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    bad = await user.execute(query, {"id": conversation, "last": 101})
    assert bad.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "last"}

    found = await user.ok('{ conversations(search: "QUESTION 1") { edges { node { id } } } }')
    assert [e["node"]["id"] for e in found["conversations"]["edges"]] == [conversation]


async def test_restart_marks_unfinished_replies_interrupted(
    settings: Settings, user: SignedIn, live_server: LiveServer, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, hang_after=5))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    await follow_reply(live_server.ws_url, user.token, message_id, stop_after=5)
    await asyncio.sleep(0.2)  # let the batch with the first five deltas reach the store

    # A second instance over the same store starts as if the first had died.
    database = live_server.app.state.services.database
    second = LiveServer(
        create_app(settings, embedded_client=database.client if database.embedded else None)
    )
    await second.start()
    try:
        events = await follow_reply(second.ws_url, user.token, message_id, after_seq=2)
        assert [e["seq"] for e in events] == [3, 4, 5, 0]
        assert events[-1]["status"] == "INTERRUPTED"
        assert events[-1]["message"]["content"] == "".join(TOKENS[:5])
    finally:
        await second.stop()
    # The first instance's own final write does not overwrite what recovery decided.
    await user.ok(
        "mutation($id: ID!) { stopGeneration(messageId: $id) { id } }", {"id": message_id}
    )
    assert (await user.ok(MESSAGE, {"id": message_id}))["message"]["status"] == "INTERRUPTED"


async def test_shutdown_interrupts_replies_after_the_grace_period(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """The final writes happen before the database client closes: read back with a client of
    our own (the app's is closed), on the embedded store and on a MongoDB server alike."""
    settings = openrouter_settings(fake_openrouter, shutdown_grace=0.2)
    fake_openrouter.default = Reply(tokens=TOKENS, token_delay=0.05)
    embedded = open_embedded_client()
    app = create_app(settings, embedded_client=embedded)
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        message_id = (await send_message(user))["assistantMessage"]["id"]
        await asyncio.sleep(0.3)
    (stored,) = await stored_documents(
        settings, embedded, "messages", {"_id": ObjectId(message_id)}
    )
    assert stored["status"] == "INTERRUPTED"
    assert 0 < len(stored["content"]) < len("".join(TOKENS))
    assert stored["content"] == "".join(TOKENS)[: len(stored["content"])]
    assert len(stored["seq_ends"]) == stored["seq"]


async def test_disabling_a_user_stops_their_replies(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.05))
    message_id = (await send_message(user))["assistantMessage"]["id"]
    admin = await sign_up(user.gql)
    await live_server.app.state.services.accounts.create_admin(admin.email, "")
    await admin.ok(
        "mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }",
        {"id": user.user_id},
    )
    stored = await live_server.app.state.services.database.messages.get(
        ObjectId(user.user_id), ObjectId(message_id)
    )
    assert stored is not None
    assert stored.status == "STOPPED"
