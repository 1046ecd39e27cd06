"""The graphql-transport-ws protocol's failure cases and our connection limits."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gql_chat.api.websockets import TransportWsHandler
from gql_chat.config import Settings
from tests.api.test_branching import wait_for_subscribers
from tests.conftest import LiveServer
from tests.support import GraphQLClient, TransportWsClient, sign_up, ws_client

USER_EVENTS = "subscription { userEvents { kind } }"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(connection_init_timeout=0.5, cors_origins="https://app.example")


async def closed_with(ws: TransportWsClient) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.receive(), timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def signed_in(live_server: LiveServer, live_gql: GraphQLClient) -> str:
    return (await sign_up(live_gql)).token


async def test_subscribe_before_ack_is_4401(live_server: LiveServer) -> None:
    async with ws_client(live_server.ws_url) as ws:
        await ws.subscribe(USER_EVENTS)
        assert await closed_with(ws) == 4401


async def test_no_init_in_time_is_4408(live_server: LiveServer) -> None:
    async with ws_client(live_server.ws_url) as ws:
        assert await closed_with(ws) == 4408


async def test_a_second_init_is_4429(live_server: LiveServer, live_gql: GraphQLClient) -> None:
    token = await signed_in(live_server, live_gql)
    async with ws_client(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await ws.send({"type": "connection_init", "payload": {}})
        assert await closed_with(ws) == 4429


async def test_a_duplicate_operation_id_is_4409(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = await signed_in(live_server, live_gql)
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        message = {"id": "same", "type": "subscribe", "payload": {"query": USER_EVENTS}}
        await ws.send(message)
        await ws.send(message)
        assert await closed_with(ws) == 4409


async def test_at_most_20_operations_per_connection(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = await signed_in(live_server, live_gql)
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        for index in range(21):
            await ws.send(
                {"id": str(index), "type": "subscribe", "payload": {"query": USER_EVENTS}}
            )
        refused = await asyncio.wait_for(ws.receive(), timeout=5)
        assert refused["type"] == "error"
        assert refused["id"] == "20"
        (error,) = refused["payload"]
        assert error["extensions"] == {"code": "RATE_LIMITED", "limit": 20}
        assert "20 operations" in error["message"]


def test_an_operation_removed_before_its_last_message_is_forgotten_quietly() -> None:
    """A socket whose sign-in ends cancels its operations and removes them; the operation's
    task may still send its last message, which forgets it again (Strawberry's `del` raised
    KeyError, logged as an ERROR with a traceback)."""
    handler = SimpleNamespace(operations={"kept": object()})
    TransportWsHandler.forget_id(cast("TransportWsHandler", handler), "gone")
    TransportWsHandler.forget_id(cast("TransportWsHandler", handler), "kept")
    assert handler.operations == {}


async def test_origins_outside_the_allowlist_are_refused(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    protocols = [Subprotocol("graphql-transport-ws")]
    init = json.dumps(
        {
            "type": "connection_init",
            "payload": {"Authorization": f"Bearer {await signed_in(live_server, live_gql)}"},
        }
    )

    async def handshake(origin: str) -> None:
        async with connect(
            f"{live_server.ws_url}/graphql",
            subprotocols=protocols,
            origin=origin,  # type: ignore[arg-type]
        ) as ws:
            await ws.send(init)
            await asyncio.wait_for(ws.recv(), timeout=5)

    with pytest.raises((InvalidStatus, ConnectionClosed)):
        await handshake("https://evil.example")
    await handshake("https://app.example")


SECRET = "driver says: mongodb://user:pw@host"


async def test_internal_errors_are_masked_over_websockets(
    live_server: LiveServer, live_gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing subscription event and a failing mutation sent over the socket both reach the
    client as INTERNAL_SERVER_ERROR without the cause, which is logged."""
    token = await signed_in(live_server, live_gql)
    services = live_server.app.state.services

    async def broken_events(owner_id: Any) -> AsyncIterator[Any]:
        raise RuntimeError(SECRET)
        yield  # an async generator, as the real one

    async def broken_update(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(SECRET)

    services.events.subscribe = broken_events
    services.accounts.update_profile = broken_update
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        for document in (
            USER_EVENTS,
            'mutation { updateProfile(input: {displayName: "x"}) { id } }',
        ):
            operation_id = await ws.subscribe(document)
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            assert (message["id"], message["type"]) == (operation_id, "next")
            errors = message["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["INTERNAL_SERVER_ERROR"]
            assert errors[0]["message"] == "Internal server error."
            assert SECRET not in json.dumps(message)
            assert (await asyncio.wait_for(ws.receive(), timeout=5))["type"] == "complete"
    assert sum(record.exc_info is not None for record in caplog.records) == 2


async def test_every_websocket_operation_has_its_line_in_the_operation_log(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As over HTTP, one line per operation, also for those ended by cancellation: a
    subscription its client completes (its usual end: "ok"), and a query its client completes
    before its result ("cancelled"). Neither had a line before."""
    user = await sign_up(live_gql)
    caplog.set_level(logging.INFO, "gql_chat.graphql")
    users = live_server.app.state.services.database.users
    read_user = users.get
    reading = asyncio.Event()

    async def slow_read(user_id: Any) -> Any:
        reading.set()
        await asyncio.sleep(10)
        return await read_user(user_id)

    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        subscription = await ws.subscribe("subscription Events { userEvents { kind } }")
        await wait_for_subscribers(live_server, user, 1)
        await ws.send({"id": subscription, "type": "complete"})
        await wait_for_subscribers(live_server, user, 0)

        monkeypatch.setattr(users, "get", slow_read)  # the query's sign-in check waits
        query = await ws.subscribe("query Who { me { id } }")
        await asyncio.wait_for(reading.wait(), timeout=5)
        await ws.send({"id": query, "type": "complete"})
        for _ in range(500):  # each line follows its operation's end, as the stack unwinds
            if len(operation_lines(caplog)) == 2:
                break
            await asyncio.sleep(0.01)
    assert [
        (vars(r)["operation_type"], vars(r)["operation_name"], vars(r)["outcome"])
        for r in operation_lines(caplog)
    ] == [("subscription", "Events", "ok"), ("query", "Who", "cancelled")]


def operation_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gql_chat.graphql"]
