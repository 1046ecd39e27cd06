"""`userEvents` carry the changed objects, resolved when the event is sent (null once deleted),
and profile changes are announced (`PROFILE_UPDATED`)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from bson import ObjectId

from tests.api.test_branching import wait_for_subscribers
from tests.conftest import LiveServer
from tests.support import (
    GraphQLClient,
    SignedIn,
    create_folder,
    create_preset,
    sign_up,
    signed_in_socket,
    ws_client,
)

EVENTS = """subscription { userEvents { kind conversationId
    conversation { id title } message { id role } folder { id name } llmConfig { id name } } }"""


async def next_event(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout=5)
    assert message["type"] == "next", message
    event: dict[str, Any] = message["payload"]["data"]["userEvents"]
    return event


async def until(ws: Any, kind: str) -> dict[str, Any]:
    while (event := await next_event(ws))["kind"] != kind:
        pass
    return event


async def test_events_carry_what_changed(live_server: LiveServer, live_gql: Any) -> None:
    user: SignedIn = await sign_up(live_gql)
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(ws_client(live_server.ws_url))
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe(EVENTS)
        await wait_for_subscribers(live_server, user, 1)

        folder = await create_folder(user, "Projects")
        event = await until(ws, "FOLDER_CREATED")
        assert event["folder"] == {"id": folder, "name": "Projects"}
        assert (event["conversation"], event["message"], event["llmConfig"]) == (None, None, None)

        preset = await create_preset(user, "Careful")
        event = await until(ws, "LLM_CONFIG_CHANGED")
        assert event["llmConfig"] == {"id": preset, "name": "Careful"}

        await user.ok('mutation { updateProfile(input: {displayName: "Ada"}) { id } }')
        assert (await until(ws, "PROFILE_UPDATED"))["kind"] == "PROFILE_UPDATED"

        sent = await user.ok(
            """mutation { sendMessage(input: {content: "hi"}) {
                conversation { id } userMessage { id } } }"""
        )
        conversation = sent["sendMessage"]["conversation"]["id"]
        event = await until(ws, "MESSAGE_CREATED")
        assert event["message"] == {"id": sent["sendMessage"]["userMessage"]["id"], "role": "USER"}
        assert event["conversation"]["id"] == conversation

        await user.ok("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": conversation})
        event = await until(ws, "CONVERSATION_DELETED")
        assert (event["conversationId"], event["conversation"]) == (conversation, None)


async def test_closed_event_sockets_leave_no_subscriber_behind(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """Idle `userEvents` sockets that close (cleanly, or by the client going away) must each
    end their subscription: a leftover one would be handed every later event of the user."""
    user = await sign_up(live_gql)
    owner = ObjectId(user.user_id)
    bus = live_server.app.state.services.events
    for how in ("close", "abort"):
        async with AsyncExitStack() as stack:
            opened = []
            for _ in range(20):
                ws = await stack.enter_async_context(
                    signed_in_socket(live_server.ws_url, user.token)
                )
                await ws.subscribe("subscription { userEvents { kind } }")
                opened.append(ws)
            for _ in range(500):
                if bus.subscriber_count(owner) == 20:
                    break
                await asyncio.sleep(0.01)
            assert bus.subscriber_count(owner) == 20
            for ws in opened:
                if how == "close":
                    await ws.connection.close()
                else:
                    ws.connection.transport.abort()
        for _ in range(500):
            if bus.subscriber_count(owner) == 0:
                break
            await asyncio.sleep(0.01)
        assert bus.subscriber_count(owner) == 0, how
