"""Races around sending: the concurrency cap under concurrent sends, sends cancelled halfway by
their websocket client, and replies of conversations or users being deleted or disabled.

The embedded store never yields inside an await, so most of these races only show on a real
MongoDB: set GQL_CHAT_TEST_MONGODB_URL to run them against one (they pass on both)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRole, MessageStatus
from tests.conftest import LiveServer, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    DEFAULT_PASSWORD,
    SEND,
    GraphQLClient,
    SignedIn,
    create_folder,
    send_message,
    sign_up,
    ws_client,
)

TERMINAL = {"COMPLETE", "STOPPED", "ERROR", "INTERRUPTED"}
SEED = 20261214
SLOW = Reply(tokens=["slow "] * 200, token_delay=0.05)
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { id status } }"
DELETE_CONVERSATION = "mutation($id: ID!) { deleteConversation(id: $id) }"
LOGIN = """mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken } }"""
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
CHANGE_PASSWORD = (
    "mutation($a: String!, $b: String!) { changePassword(currentPassword: $a, newPassword: $b) }"
)


MANY_AT_ONCE = ("test_deleting_an_account", "test_disabling_a_user")
"""Tests that need many sends in flight at once, not stopped by the per-user cap."""


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter, request: pytest.FixtureRequest) -> Settings:
    many = request.node.name.startswith(MANY_AT_ONCE)
    return openrouter_settings(fake_openrouter, max_concurrent_generations=50 if many else 3)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


def messages_of(live_server: LiveServer) -> Any:
    return live_server.app.state.services.database.db["messages"]


async def documents(live_server: LiveServer, collection: str, query: dict[str, Any]) -> list[Any]:
    db = live_server.app.state.services.database.db
    return [doc async for doc in db[collection].find(query)]


async def settle(live_server: LiveServer, seconds: float = 10.0) -> None:
    """Until no reply task runs in the app (every reply ended and stored)."""
    runner = live_server.app.state.services.runner
    for _ in range(int(seconds / 0.02)):
        if runner.running == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{runner.running} replies still running")


async def send_codes(user: SignedIn, count: int, prefix: str) -> list[str]:
    """`count` concurrent sends: the assistant message id of each, or its error code."""

    async def one(index: int) -> str:
        result = await user.execute(SEND, {"input": {"content": f"{prefix} {index}"}})
        if result.errors:
            return str(result.error_codes[0])
        return str(result.data["sendMessage"]["assistantMessage"]["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_concurrent_sends_start_at_most_the_cap_and_free_their_slots(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """Check and claim of a slot happen in one step: 10 concurrent sends start 3 replies."""
    fake_openrouter.default = SLOW
    results = await send_codes(user, 10, "burst")
    started = [r for r in results if r != "RATE_LIMITED"]
    assert len(started) == 3, results
    assert results.count("RATE_LIMITED") == 7
    for message_id in started:
        await user.ok(STOP, {"id": message_id})
    await settle(live_server)
    again = await send_codes(user, 10, "again")  # no reservation leaked
    assert len([r for r in again if r != "RATE_LIMITED"]) == 3, again
    for message_id in again:
        if message_id != "RATE_LIMITED":
            await user.ok(STOP, {"id": message_id})
    await settle(live_server)


async def test_a_send_cancelled_by_its_client_is_stored_whole_or_not_at_all(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """sendMessage over a websocket, cancelled with `complete` 0-15 ms in: every stored user
    message has its reply, every reply ends, and a retry with the key gets the stored pair."""
    fake_openrouter.default = Reply(tokens=["short ", "reply"], token_delay=0.01)
    conversation = await send_message(user, "first")
    conversation_id = conversation["conversation"]["id"]
    await settle(live_server)
    rng = random.Random(SEED)
    keys = [f"cancel-{i}" for i in range(30)]
    async with ws_client(live_server.ws_url) as ws:
        ack = await ws.init({"Authorization": f"Bearer {user.token}"})
        assert ack["type"] == "connection_ack"
        for key in keys:
            variables = {
                "input": {
                    "content": "hello",
                    "conversationId": conversation_id,
                    "clientMessageId": key,
                }
            }
            await ws.send(
                {"id": key, "type": "subscribe", "payload": {"query": SEND, "variables": variables}}
            )
            await asyncio.sleep(rng.uniform(0, 0.015))
            await ws.send({"id": key, "type": "complete"})
            await asyncio.sleep(0.05)
    await settle(live_server)
    owner = ObjectId(user.user_id)
    stored = await documents(live_server, "messages", {"owner_id": owner})
    questions = [d for d in stored if d["role"] == "USER" and d.get("client_message_id") in keys]
    replies = {d["parent_id"]: d for d in stored if d["role"] == "ASSISTANT"}
    for question in questions:
        assert question["_id"] in replies, "a user message was stored without its reply"
        assert replies[question["_id"]]["status"] in TERMINAL
    for key in keys:
        variables = {
            "input": {"content": "hello", "conversationId": conversation_id, "clientMessageId": key}
        }
        for _ in range(50):
            result = await user.execute(SEND, variables)
            if result.error_codes != ["RATE_LIMITED"]:
                break
            await asyncio.sleep(0.1)
        sent = result.ok()["sendMessage"]
        question = next((q for q in questions if q["client_message_id"] == key), None)
        if question is not None:  # stored before: the same pair comes back
            assert sent["userMessage"]["id"] == str(question["_id"])
            assert sent["assistantMessage"]["id"] == str(replies[question["_id"]]["_id"])
        await settle(live_server)
    stored = await documents(live_server, "messages", {"owner_id": owner})
    assert all(d["status"] in TERMINAL for d in stored)
    conversation_doc = (await documents(live_server, "conversations", {"owner_id": owner}))[0]
    assert conversation_doc["active_leaf_id"] in {d["_id"] for d in stored}


async def test_a_password_change_cancelled_by_its_client_is_whole_or_not_at_all(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """changePassword cancelled 0-30 ms in: a changed password never leaves another session
    working."""
    rng = random.Random(SEED)
    outcomes: list[tuple[bool, bool]] = []
    for trial in range(12):
        user = await sign_up(live_gql)
        old, new = DEFAULT_PASSWORD, f"another long password {trial}"
        other = await live_gql.execute(LOGIN, {"input": {"email": user.email, "password": old}})
        other_refresh = other.ok()["login"]["refreshToken"]
        async with ws_client(live_server.ws_url) as ws:
            await ws.init({"Authorization": f"Bearer {user.token}"})
            payload = {"query": CHANGE_PASSWORD, "variables": {"a": old, "b": new}}
            await ws.send({"id": "1", "type": "subscribe", "payload": payload})
            await asyncio.sleep(rng.uniform(0, 0.03))
            await ws.send({"id": "1", "type": "complete"})
            await asyncio.sleep(0.2)
        changed = not (
            await live_gql.execute(LOGIN, {"input": {"email": user.email, "password": new}})
        ).errors
        other_alive = not (await live_gql.execute(REFRESH, {"t": other_refresh})).errors
        outcomes.append((changed, other_alive))
        assert not (changed and other_alive), f"trial {trial}: new password, old session alive"


async def test_deleting_conversations_stops_their_replies_and_frees_the_slots(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    sent = [await send_message(user, f"slow {i}") for i in range(3)]
    await asyncio.sleep(0.2)  # streaming
    for reply in sent:
        assert await user.ok(DELETE_CONVERSATION, {"id": reply["conversation"]["id"]})
    assert fake_openrouter.disconnects == 3  # the upstream requests were closed
    fake_openrouter.default = Reply(tokens=["quick"])
    fresh = await user.execute(SEND, {"input": {"content": "at once"}})
    assert not fresh.errors, fresh.errors  # the three slots are free
    await settle(live_server)
    owner = ObjectId(user.user_id)
    deleted = [ObjectId(r["conversation"]["id"]) for r in sent]
    assert await documents(live_server, "messages", {"conversation_id": {"$in": deleted}}) == []
    assert len(await documents(live_server, "conversations", {"owner_id": owner})) == 1


async def test_deleting_a_folder_with_its_contents_stops_their_replies(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    folder = await create_folder(user, "Doomed")
    sent = [await send_message(user, f"filed {i}", folderId=folder) for i in range(3)]
    await asyncio.sleep(0.2)  # streaming
    assert await user.ok(
        "mutation($id: ID!) { deleteFolder(id: $id, deleteContents: true) }", {"id": folder}
    )
    assert fake_openrouter.disconnects == 3  # the upstream requests were closed
    fake_openrouter.default = Reply(tokens=["quick"])
    fresh = await user.execute(SEND, {"input": {"content": "at once"}})
    assert not fresh.errors, fresh.errors  # the three slots are free
    await settle(live_server)
    deleted = [ObjectId(r["conversation"]["id"]) for r in sent]
    assert await documents(live_server, "messages", {"conversation_id": {"$in": deleted}}) == []


async def test_deleting_an_account_while_it_sends_leaves_nothing(
    live_server: LiveServer, live_gql: GraphQLClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(tokens=["slow "] * 40, token_delay=0.05)
    for trial in range(3):
        user = await sign_up(live_gql)
        owner = ObjectId(user.user_id)

        async def send(index: int, delay: float, user: SignedIn = user) -> Any:
            await asyncio.sleep(delay)
            return await user.execute(SEND, {"input": {"content": f"hi {index}"}})

        async def delete(user: SignedIn = user, trial: int = trial) -> Any:
            await asyncio.sleep(0.01 + 0.01 * trial)
            return await user.execute(
                "mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD}
            )

        results = await asyncio.gather(delete(), *(send(i, 0.004 * i) for i in range(20)))
        assert results[0].ok()["deleteAccount"] is True
        await settle(live_server)
        await asyncio.sleep(0.2)
        for collection in ("messages", "conversations", "folders", "llm_configs"):
            left = await documents(live_server, collection, {"owner_id": owner})
            assert left == [], f"trial {trial}: {collection} of the deleted user remain"
        assert await documents(live_server, "users", {"_id": owner}) == []


async def test_disabling_a_user_while_they_send_leaves_no_reply_running(
    live_server: LiveServer, live_gql: GraphQLClient, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(tokens=["slow "] * 40, token_delay=0.05)
    admin = await sign_up(live_gql)
    await live_server.app.state.services.accounts.create_admin(admin.email, "")
    running: list[int] = []  # replies of the user running once disabling returned
    for trial in range(4):
        user = await sign_up(live_gql)
        owner = ObjectId(user.user_id)

        async def send(index: int, delay: float, user: SignedIn = user) -> Any:
            await asyncio.sleep(delay)
            return await user.execute(SEND, {"input": {"content": f"hi {index}"}})

        async def disable(
            user: SignedIn = user, trial: int = trial, owner: ObjectId = owner
        ) -> Any:
            await asyncio.sleep(0.01 + 0.01 * trial)
            result = await admin.execute(
                "mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }",
                {"id": user.user_id},
            )
            result.ok()
            running.append(live_server.app.state.services.runner.replies_running(owner))
            # What exists once disabling returned: nothing may be added after.
            return await documents(live_server, "messages", {"owner_id": owner})

        results = await asyncio.gather(disable(), *(send(i, 0.003 * i) for i in range(30)))
        at_disable = results[0]
        await settle(live_server)
        await asyncio.sleep(0.2)
        later = await documents(live_server, "messages", {"owner_id": owner})
        assert {d["_id"] for d in later} <= {d["_id"] for d in at_disable}, trial
        assert running[-1] == 0, f"trial {trial}: replies still running after disabling"
        statuses = [d["status"] for d in later if d["role"] == "ASSISTANT"]
        # Stopped (or never started): none ran on to completion for a disabled user.
        assert set(statuses) <= TERMINAL - {"COMPLETE"}, statuses


async def test_a_retry_repairs_a_user_message_stored_without_its_reply(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """What a send cut between its two writes leaves (a crash, a failed second write): the
    retries with its key get one reply, never NOT_FOUND."""
    fake_openrouter.default = Reply(tokens=["repaired"], first_delay=0.05)
    sent = await send_message(user, "first")
    await settle(live_server)
    messages = live_server.app.state.services.database.messages
    owner = ObjectId(user.user_id)
    conversation_id = ObjectId(sent["conversation"]["id"])
    orphan = messages.draft(
        owner,
        conversation_id,
        role=MessageRole.USER,
        content="cut short",
        status=MessageStatus.COMPLETE,
        parent_id=ObjectId(sent["assistantMessage"]["id"]),
        client_message_id="cut-short",
    )
    await messages.add(orphan)
    variables = {
        "input": {
            "content": "cut short",
            "conversationId": str(conversation_id),
            "clientMessageId": "cut-short",
        }
    }
    results = await asyncio.gather(*(user.execute(SEND, variables) for _ in range(3)))
    pairs = {
        (
            r.ok()["sendMessage"]["userMessage"]["id"],
            r.ok()["sendMessage"]["assistantMessage"]["id"],
        )
        for r in results
    }
    assert len(pairs) == 1, pairs
    ((question_id, reply_id),) = pairs
    assert question_id == str(orphan.id)
    await settle(live_server)
    replies = await documents(live_server, "messages", {"parent_id": orphan.id})
    assert [str(d["_id"]) for d in replies] == [reply_id]
    assert replies[0]["status"] == "COMPLETE"
    assert replies[0]["content"] == "repaired"


async def test_one_user_follows_at_most_the_cap_of_reply_streams_at_once(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """Ten at once (the default); one more ends with RATE_LIMITED; once one ends, another
    may start. Another user's streams do not count."""
    fake_openrouter.default = SLOW
    reply = (await send_message(user, "follow me"))["assistantMessage"]["id"]
    cap = live_server.app.state.services.settings.max_followers_per_user
    async with ws_client(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {user.token}"}))[
            "type"
        ] == "connection_ack"
        ids = [await ws.subscribe(STREAM_EVENTS, {"id": reply}) for _ in range(cap + 1)]
        refused: dict[str, Any] = {}
        while not refused:
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            errors = (
                (message.get("payload") or {}).get("errors")
                if message["type"] in {"next", "error"}
                else None
            )
            if errors:
                refused = {"id": message["id"], "code": errors[0]["extensions"]["code"]}
        # Each operation checks its sign-in first (a store read), so which one reaches the cap
        # last is not always the last sent.
        assert refused["code"] == "RATE_LIMITED"
        assert refused["id"] in ids
        following = next(i for i in ids if i != refused["id"])
        await ws.send({"id": following, "type": "complete"})
        await asyncio.sleep(0.1)
        again = await ws.subscribe(STREAM_EVENTS, {"id": reply})
        while True:
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            if message.get("id") == again:
                assert message["type"] == "next"
                assert "errors" not in message["payload"]
                break
    await user.ok(STOP, {"id": reply})


STREAM_EVENTS = """subscription($id: ID!) { messageStream(messageId: $id) { seq done } }"""


async def test_a_user_disabled_elsewhere_before_their_send_is_admitted_gets_no_reply(
    live_server: LiveServer,
    user: SignedIn,
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disabled in the database (by another instance) after this request's sign-in check
    read the user: the send is refused as a session that ended, nothing of it is stored or
    left running, and its reply slot is free again."""
    fake_openrouter.default = SLOW
    services = live_server.app.state.services
    users = services.database.db["users"]
    owner = ObjectId(user.user_id)
    is_active = services.accounts.is_active

    async def disabled_meanwhile(user_id: ObjectId) -> bool:
        await users.update_one({"_id": user_id}, {"$set": {"disabled": True}})
        return bool(await is_active(user_id))

    monkeypatch.setattr(services.accounts, "is_active", disabled_meanwhile)
    result = await user.execute(SEND, {"input": {"content": "too late"}})
    monkeypatch.undo()

    assert result.error_codes == ["UNAUTHENTICATED"]
    await settle(live_server)
    for collection in ("messages", "conversations"):
        assert await documents(live_server, collection, {"owner_id": owner}) == [], collection
    assert services.runner.replies_running(owner) == 0
    await users.update_one({"_id": owner}, {"$set": {"disabled": False}})
    fake_openrouter.default = Reply()
    sent = await send_message(user, "enabled again")
    assert sent["assistantMessage"]["status"] in {"PENDING", "STREAMING", "COMPLETE"}
