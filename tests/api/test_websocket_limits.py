"""What an unauthenticated client can hold on a websocket: the message size limit, the
sign-in `connection_init` must carry, and the cap on open websockets per client IP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

import pytest
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gql_chat.config import Settings
from gql_chat.streams.user_events import (
    SUBSCRIBER_BUFFER,
    UserEvent,
    UserEventBus,
    UserEventKind,
)
from tests.conftest import LiveServer
from tests.support import GraphQLClient, TransportWsClient, sign_up, ws_client

MAX_BODY_BYTES = 4096
MAX_PER_IP = 3
PROTOCOLS = [Subprotocol("graphql-transport-ws")]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        max_body_bytes=MAX_BODY_BYTES,
        max_websockets_per_ip=MAX_PER_IP,
        connection_init_timeout=0.5,
        trusted_proxies="127.0.0.1",
    )


async def close_code(ws: TransportWsClient) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.receive(), timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def init_of_size(size: int, token: str) -> str:
    """A `connection_init` of exactly `size` bytes, padded with a field the server ignores."""
    payload = {"Authorization": f"Bearer {token}", "pad": ""}
    padding = size - len(json.dumps({"type": "connection_init", "payload": payload}))
    assert padding >= 0
    payload["pad"] = "x" * padding
    text = json.dumps({"type": "connection_init", "payload": payload})
    assert len(text.encode()) == size
    return text


# Message size


async def test_a_message_at_the_body_limit_is_read(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = (await sign_up(live_gql)).token
    async with ws_client(live_server.ws_url) as ws:
        await ws.connection.send(init_of_size(MAX_BODY_BYTES, token))
        assert (await asyncio.wait_for(ws.receive(), timeout=5))["type"] == "connection_ack"


async def test_a_message_over_the_body_limit_closes_with_1009(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """uvicorn's own default is 16 MiB, unauthenticated: the limit must be the body limit."""
    token = (await sign_up(live_gql)).token
    async with ws_client(live_server.ws_url) as ws:
        await ws.connection.send(init_of_size(MAX_BODY_BYTES + 1, token))
        assert await close_code(ws) == 1009
    # Signed in, the limit holds as well.
    async with ws_client(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await ws.send({"id": "1", "type": "subscribe", "payload": {"query": "x" * MAX_BODY_BYTES}})
        assert await close_code(ws) == 1009


# Signing in


@pytest.mark.parametrize("payload", [None, {}, {"Authorization": ""}, {"Authorization": "Bearer "}])
async def test_a_connection_init_without_a_token_is_refused_with_4403(
    live_server: LiveServer, payload: dict[str, Any] | None
) -> None:
    """Every subscription needs a user, so an anonymous socket has nothing to wait for."""
    async with ws_client(live_server.ws_url) as ws:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await ws.send(message)
        assert await close_code(ws) == 4403


async def test_a_socket_that_never_signs_in_is_closed_with_4408(live_server: LiveServer) -> None:
    async with ws_client(live_server.ws_url) as ws:
        assert await close_code(ws) == 4408


# Open websockets per client IP


async def handshake(live_server: LiveServer, forwarded_for: str | None = None) -> ClientConnection:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    return await connect(
        f"{live_server.ws_url}/graphql", subprotocols=PROTOCOLS, additional_headers=headers
    )


async def refused_status(live_server: LiveServer, forwarded_for: str | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await handshake(live_server, forwarded_for)
    status: int = refused.value.response.status_code
    return status


async def handshake_when_a_slot_frees(
    live_server: LiveServer, forwarded_for: str | None = None
) -> ClientConnection:
    """The server counts a socket as closed when its handler has returned, shortly after the
    client saw the close."""
    statuses = []
    for _ in range(100):
        try:
            return await handshake(live_server, forwarded_for)
        except InvalidStatus as refused:
            statuses.append(refused.response.status_code)
            await asyncio.sleep(0.05)
    raise AssertionError(f"the closed websocket's slot was never freed: {set(statuses)}")


@asynccontextmanager
async def sockets(
    live_server: LiveServer, count: int, forwarded_for: str | None = None
) -> AsyncIterator[list[ClientConnection]]:
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(count):
            ws = await handshake_when_a_slot_frees(live_server, forwarded_for)
            opened.append(await stack.enter_async_context(ws))
        yield opened


async def test_open_websockets_are_capped_per_client_ip(live_server: LiveServer) -> None:
    async with sockets(live_server, MAX_PER_IP) as opened:
        response_status = await refused_status(live_server)
        assert response_status == 429
        await opened[0].close()
        replacement = await handshake_when_a_slot_frees(live_server)
        assert await refused_status(live_server) == 429
        await replacement.close()


async def test_every_way_a_socket_ends_frees_its_slot(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = (await sign_up(live_gql)).token
    for _ in range(2):  # twice the cap in all: a leaked slot would show
        # Refused at sign-in (4403), timed out (4408), protocol error (4400), signed in and
        # closed by the client, and dropped without a close frame.
        async with ws_client(live_server.ws_url) as ws:
            await ws.send({"type": "connection_init", "payload": {}})
            assert await close_code(ws) == 4403
        async with ws_client(live_server.ws_url) as ws:
            assert await close_code(ws) == 4408
        async with ws_client(live_server.ws_url) as ws:
            await ws.connection.send("not json")
            assert await close_code(ws) == 4400
        async with ws_client(live_server.ws_url) as ws:
            assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        dropped = await handshake(live_server)
        dropped.transport.abort()
        await asyncio.sleep(0.1)
    async with sockets(live_server, MAX_PER_IP):
        assert await refused_status(live_server) == 429


async def test_the_cap_counts_the_client_behind_a_trusted_proxy(
    live_server: LiveServer,
) -> None:
    """The peer (127.0.0.1) is a trusted proxy here: each forwarded client has its own cap."""
    async with sockets(live_server, MAX_PER_IP, forwarded_for="203.0.113.7"):
        assert await refused_status(live_server, "203.0.113.7") == 429
        assert await refused_status(live_server, "198.51.100.1, 203.0.113.7") == 429
        async with sockets(live_server, MAX_PER_IP, forwarded_for="203.0.113.8"):
            assert await refused_status(live_server, "203.0.113.8") == 429
        async with sockets(live_server, MAX_PER_IP):  # the proxy's own address
            pass


async def test_a_refused_handshake_logs_no_error(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's websockets-sansio protocol logged "ASGI callable returned without completing
    handshake." at ERROR for every 429 (no sign-in needed): one line per refused attempt."""
    for name in ("uvicorn", "uvicorn.error"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    async with sockets(live_server, MAX_PER_IP):
        for _ in range(5):
            assert await refused_status(live_server) == 429
    await asyncio.sleep(0.05)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_a_subscriber_that_falls_behind_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A `userEvents` subscriber whose socket stopped reading: one warning when it starts
    dropping events, not one per event (95 such subscribers logged 95 lines per mutation)."""
    bus = UserEventBus()
    owner = ObjectId()
    events = bus.subscribe(owner)
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # subscribed, waiting for the first event
    for _ in range(SUBSCRIBER_BUFFER + 500):
        bus.publish(owner, UserEvent(UserEventKind.FOLDER_CREATED))
    await first
    lagging = [r for r in caplog.records if "fell behind" in r.getMessage()]
    assert len(lagging) == 1
    # Once it has caught up, falling behind again is worth one more line.
    for _ in range(SUBSCRIBER_BUFFER - 1):
        await anext(events)
    for _ in range(SUBSCRIBER_BUFFER + 10):
        bus.publish(owner, UserEvent(UserEventKind.FOLDER_CREATED))
    lagging = [r for r in caplog.records if "fell behind" in r.getMessage()]
    assert len(lagging) == 2
    await cast("AsyncGenerator[UserEvent, None]", events).aclose()
    assert bus.subscriber_count(owner) == 0
