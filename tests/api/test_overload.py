"""The database too slow or unreachable: the client gets a retryable error and the log one line
naming the failure's type (not a traceback per request, which flooded the log when 1,000 sends
hit a slow server, and not the driver's message); nothing is left half-done."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import httpx
import pytest
from pymongo.errors import ServerSelectionTimeoutError
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gql_chat.api.errors import UNAVAILABLE_MESSAGE
from gql_chat.domain.messages import MessageRecord
from gql_chat.services import reply_start
from tests.conftest import LiveServer
from tests.support import SEND, GraphQLClient, SignedIn, send_message, sign_up, ws_client

UNAVAILABLE = {"code": "INTERNAL_SERVER_ERROR", "retryAfter": 1}
DRIVER_MESSAGE = "db-7.internal:27017: [Errno 111] Connection refused"


def unreachable(*_: Any) -> NoReturn:
    raise ServerSelectionTimeoutError(DRIVER_MESSAGE)


def timed_out(*_: Any) -> NoReturn:
    raise TimeoutError  # a bound of ours (a read under `asyncio.timeout`), not the driver's


def api_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("gql_chat.api", "uvicorn"))]


async def test_a_send_whose_writes_time_out_answers_a_retryable_error(
    app: Starlette,
    alice: SignedIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = app.state.services.database.messages
    add = store.add

    async def slow_add(message: MessageRecord) -> None:
        await asyncio.sleep(0.3)
        await add(message)

    monkeypatch.setattr(reply_start, "WRITE_TIMEOUT", 0.05)
    monkeypatch.setattr(store, "add", slow_add)
    with caplog.at_level(logging.WARNING):
        result = await alice.execute(SEND, {"input": {"content": "Hello"}})
    assert result.data is None
    (error,) = result.errors
    assert (error["message"], error["extensions"]) == (UNAVAILABLE_MESSAGE, UNAVAILABLE)
    records = api_log(caplog)
    assert [r.getMessage() for r in records] == ["sendMessage failed: TimeoutError"]
    assert records[0].exc_info is None

    monkeypatch.undo()  # a real MongoDB's writes may take longer than the 50 ms above
    # The conversation the send opened is gone again, and with it anything it wrote.
    database = app.state.services.database.db
    conversations: list[dict[str, Any]] = await database["conversations"].find({}).to_list(None)
    messages: list[dict[str, Any]] = await database["messages"].find({}).to_list(None)
    assert (conversations, messages) == ([], [])
    # Every reply slot is free again: three sends at once are admitted.
    await asyncio.gather(*(send_message(alice, f"again {i}") for i in range(3)))


async def test_an_unreachable_database_answers_a_retryable_error_over_http(
    app: Starlette,
    alice: SignedIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(app.state.services.database.users, "get", unreachable)
    with caplog.at_level(logging.WARNING):
        result = await alice.execute("{ me { id } }")
    (error,) = result.errors
    assert (error["message"], error["extensions"]) == (UNAVAILABLE_MESSAGE, UNAVAILABLE)
    assert [r.getMessage() for r in api_log(caplog)] == ["me failed: ServerSelectionTimeoutError"]
    assert "db-7" not in caplog.text + str(result.body)


@pytest.mark.parametrize(
    ("failing_read", "logged"),
    [(unreachable, "ServerSelectionTimeoutError"), (timed_out, "TimeoutError")],
)
async def test_an_unreachable_database_at_websocket_sign_in_closes_with_1011(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing_read: Callable[..., NoReturn],
    logged: str,
) -> None:
    """Not 4403 (the client would sign its user out), and no "Exception in ASGI application":
    one warning line without a traceback, for the driver's errors and our own timeouts alike."""
    alice = await sign_up(live_gql)
    monkeypatch.setattr(live_server.app.state.services.database.users, "get", failing_read)
    with caplog.at_level(logging.WARNING):
        async with ws_client(live_server.ws_url) as ws:
            await ws.send(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {alice.token}"}}
            )
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.receive(), timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    records = api_log(caplog)
    assert [r.getMessage() for r in records] == [f"websocket message failed: {logged}"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is None
    assert "db-7" not in caplog.text


async def test_an_unreachable_database_at_legacy_protocol_sign_in_closes_with_1011(
    legacy_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The legacy `graphql-ws` protocol (when enabled) as graphql-transport-ws: 1011 and one
    warning line (the error escaped the ASGI application, with its traceback)."""
    async with httpx.AsyncClient(base_url=legacy_server.http_url) as http:
        alice = await sign_up(GraphQLClient(http))
    monkeypatch.setattr(legacy_server.app.state.services.database.users, "get", unreachable)
    legacy = [Subprotocol("graphql-ws")]
    with caplog.at_level(logging.WARNING):
        async with connect(f"{legacy_server.ws_url}/graphql", subprotocols=legacy) as ws:
            init = {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {alice.token}"},
            }
            await ws.send(json.dumps(init))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    records = api_log(caplog)
    assert [r.getMessage() for r in records] == [
        "websocket message failed: ServerSelectionTimeoutError"
    ]
    assert records[0].exc_info is None
    assert "db-7" not in caplog.text
