"""`userEvents` carry the changed objects, resolved when the event is sent (null once deleted),
and profile changes are announced (`PROFILE_UPDATED`)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from tests.api.test_branching import wait_for_subscribers
from tests.conftest import LiveServer
from tests.support import SignedIn, create_folder, create_preset, sign_up, ws_client

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
