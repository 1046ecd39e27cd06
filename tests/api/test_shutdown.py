"""Shutting the server down while a reply streams: its followers get the rest of the reply and
`done` (within the grace period), then a clean close; nothing is logged as an error."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from gql_chat.app import create_app
from tests.conftest import LiveServer, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    STREAM,
    GraphQLClient,
    SignedIn,
    TransportWsClient,
    send_message,
    sign_up,
    ws_client,
)

TOKENS = [f"tok{i} " for i in range(20)]
USER_EVENTS = "subscription { userEvents { kind } }"
GOING_AWAY = 1001


@pytest.fixture(autouse=True)
def uvicorn_errors_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's own logging config keeps its records from the root logger."""
    monkeypatch.setattr(logging.getLogger("uvicorn"), "propagate", True)


async def start_server(fake: FakeOpenRouter, grace: float) -> LiveServer:
    settings = openrouter_settings(fake, shutdown_grace=grace)
    server = LiveServer(create_app(settings), settings)
    await server.start()
    logging.getLogger("uvicorn").propagate = True  # the server's start configured it again
    return server


async def signed_in(server: LiveServer, http: httpx.AsyncClient) -> SignedIn:
    return await sign_up(GraphQLClient(http))


async def next_message(ws: TransportWsClient) -> dict[str, Any]:
    return await asyncio.wait_for(ws.receive(), timeout=10)


async def follow_until_closed(
    ws: TransportWsClient, operation: str
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The reply's events, the messages after them, and the close code."""
    events: list[dict[str, Any]] = []
    after: list[str] = []
    with pytest.raises(ConnectionClosed) as closed:
        await read_into(ws, operation, events, after)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return events, after, closed.value.rcvd.code


async def read_into(
    ws: TransportWsClient, operation: str, events: list[dict[str, Any]], after: list[str]
) -> None:
    while True:
        message = await next_message(ws)
        if message.get("id") == operation and message["type"] == "next":
            assert "errors" not in message["payload"], message["payload"]
            events.append(message["payload"]["data"]["messageStream"])
        else:
            after.append(message["type"])


def assert_nothing_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info is not None or record.levelno >= logging.ERROR
    ]
    assert noisy == []


@pytest.mark.parametrize(
    ("grace", "status"),
    [(10.0, "COMPLETE"), (0.4, "INTERRUPTED")],
    ids=["reply-ends-within-grace", "grace-runs-out"],
)
async def test_followers_get_the_rest_of_the_reply_then_a_clean_close(
    fake_openrouter: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
    grace: float,
    status: str,
) -> None:
    fake_openrouter.enqueue(Reply(tokens=TOKENS, token_delay=0.06))  # about 1.2 s
    server = await start_server(fake_openrouter, grace)
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            user = await signed_in(server, http)
            message_id = (await send_message(user))["assistantMessage"]["id"]
        auth = {"Authorization": f"Bearer {user.token}"}
        async with ws_client(server.ws_url) as follower, ws_client(server.ws_url) as watcher:
            assert (await follower.init(auth))["type"] == "connection_ack"
            assert (await watcher.init(auth))["type"] == "connection_ack"
            await watcher.subscribe(USER_EVENTS)
            operation = await follower.subscribe(STREAM, {"id": message_id, "after": 0})
            first = await next_message(follower)
            assert first["type"] == "next"

            caplog.clear()
            started = time.monotonic()
            stopping = asyncio.create_task(server.stop())
            events, after, code = await follow_until_closed(follower, operation)
            await stopping
            stopped = True
            took = time.monotonic() - started

            events.insert(0, first["payload"]["data"]["messageStream"])
            deltas, done = events[:-1], events[-1]
            assert done["done"] is True
            assert done["status"] == status
            assert [e["seq"] for e in deltas] == list(range(1, len(deltas) + 1))
            assert "".join(e["delta"] for e in deltas) == done["message"]["content"]
            if status == "COMPLETE":
                assert done["message"]["content"] == "".join(TOKENS)
            else:
                assert 0 < len(deltas) < len(TOKENS)
                assert took < grace + 3
            assert after == ["complete"]
            assert code == GOING_AWAY
            # A socket with a subscription that never ends goes away the same way.
            _, _, watcher_code = await follow_until_closed(watcher, "none")
            assert watcher_code == GOING_AWAY
    finally:
        if not stopped:
            await server.stop()
    assert_nothing_logged_as_an_error(caplog)


async def test_a_server_with_nothing_in_flight_stops_at_once(
    fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(fake_openrouter, grace=10.0)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        user = await signed_in(server, http)
    async with ws_client(server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {user.token}"}))["type"] == (
            "connection_ack"
        )
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == GOING_AWAY
    assert_nothing_logged_as_an_error(caplog)


async def test_long_documents_do_not_slow_the_shutdown(
    fake_openrouter: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether an operation ends by itself is recorded when it starts, from the document
    parsed then: shutdown never parses the sockets' documents again (240 subscriptions with
    a 100 KB comment each took about 4 s of event loop to re-parse, past the grace period)."""
    sockets, per_socket, grace = 12, 20, 0.5
    settings = openrouter_settings(
        fake_openrouter,
        shutdown_grace=grace,
        max_document_bytes=200_000,
        connection_init_timeout=120,  # a loaded CI machine opens 12 sockets slowly
    )
    server = LiveServer(create_app(settings), settings)
    await server.start()
    logging.getLogger("uvicorn").propagate = True
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            user = await signed_in(server, http)
        auth = {"Authorization": f"Bearer {user.token}"}
        async with AsyncExitStack() as stack:
            clients = []
            for number in range(sockets):  # each signs in as soon as it is open
                ws = await stack.enter_async_context(ws_client(server.ws_url))
                clients.append(ws)
                assert (await ws.init(auth))["type"] == "connection_ack"
                for operation in range(per_socket):
                    comment = f"# {number}-{operation} " + "x" * 100_000
                    await ws.subscribe(f"{USER_EVENTS}\n{comment}")
            for ws in clients:  # every subscription has started once the pings are answered
                await ws.send({"type": "ping"})
                while (await next_message(ws))["type"] != "pong":
                    pass
            caplog.clear()
            started = time.monotonic()
            await server.stop()
            stopped = True
            took = time.monotonic() - started
            for ws in clients:
                _, _, code = await follow_until_closed(ws, "none")
                assert code == GOING_AWAY
        assert took < grace + 1  # it took 0.2 s; re-parsing, 2.8 s
    finally:
        if not stopped:
            await server.stop()
    assert_nothing_logged_as_an_error(caplog)
