"""`userEvents` carry the changed objects, resolved when the event is sent (null once deleted),
profile changes are announced (`PROFILE_UPDATED`), and closed event sockets leave nothing behind."""

from __future__ import annotations

import asyncio
import gc
from contextlib import AsyncExitStack
from typing import Any

from bson import ObjectId
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gql_chat.api.context import Context
from gql_chat.api.websocket_sign_ins import ConnectionSignIn
from gql_chat.api.websockets import TransportWsHandler
from gql_chat.platform.uvicorn_limits import LimitedHttpToolsProtocol
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


SERVER_SIDE = (
    TransportWsHandler,
    Context,
    ConnectionSignIn,
    LimitedHttpToolsProtocol,
    WebSocketsSansIOProtocol,
    asyncio.CancelledError,
)


async def test_closed_event_sockets_leave_no_cyclic_garbage(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """A closed subscription socket, or a subscription the client completed, is freed when it
    ends, not by a full garbage collection: after 10,000 sockets had closed, one collection
    found 1.3 million objects in cycles (the cancelled operation's error and frames, the
    sign-in watch, uvicorn's HTTP protocol) and held the event loop for 1.5 s."""
    user = await sign_up(live_gql)
    owner = ObjectId(user.user_id)
    bus = live_server.app.state.services.events
    gc.collect()
    gc.disable()
    try:
        async with AsyncExitStack() as stack:
            for _ in range(3):
                ws = await stack.enter_async_context(
                    signed_in_socket(live_server.ws_url, user.token)
                )
                await ws.subscribe("subscription { userEvents { kind } }")
            await wait_for_subscribers(live_server, user, 3)
            # One more on the last socket, completed by the client while the socket stays.
            completed = await ws.subscribe("subscription { userEvents { kind } }")
            await wait_for_subscribers(live_server, user, 4)
            await ws.send({"id": completed, "type": "complete"})
            await wait_for_subscribers(live_server, user, 3)
        for _ in range(500):
            if bus.subscriber_count(owner) == 0 and live_server.app.state.websockets.count == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the closed sockets' last callbacks
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = sorted({type(o).__name__ for o in gc.garbage if isinstance(o, SERVER_SIDE)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
