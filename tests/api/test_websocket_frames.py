"""Malformed graphql-transport-ws frames, before and after sign-in: each closes the socket
with 4400 (the protocol's answer to an invalid message) and nothing is logged as an error."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.conftest import LiveServer
from tests.support import GraphQLClient, TransportWsClient, sign_up, ws_client

ME = "{ me { id } }"


@pytest.fixture(autouse=True)
def uvicorn_errors_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's own logging config keeps its records from the root logger ("Exception in
    ASGI application" is uvicorn's)."""
    monkeypatch.setattr(logging.getLogger("uvicorn"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "propagate", True)


async def close_code(ws: TransportWsClient) -> int:
    """The close frame's code; a message before it fails the test."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.receive(), timeout=5)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info is not None or record.levelno >= logging.ERROR
    ]
    assert noisy == []


@pytest.mark.parametrize("frame", ["[1]", "null", '"x"', "5", "true", '{"type": 5}', "{}"])
async def test_a_first_frame_that_is_not_a_message_is_4400(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    logging.getLogger("uvicorn.error").propagate = True  # the server's start configured it
    async with ws_client(live_server.ws_url) as ws:
        await ws.connection.send(frame)
        assert await close_code(ws) == 4400
    await asyncio.sleep(0.05)  # the server's handler has returned
    assert_no_errors_logged(caplog)


def subscribe(**fields: Any) -> dict[str, Any]:
    return {"type": "subscribe", "id": "1", "payload": {"query": ME}, **fields}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(subscribe(payload=None), id="payload-null"),
        pytest.param(subscribe(payload=[ME]), id="payload-list"),
        pytest.param({"type": "subscribe", "id": "1"}, id="payload-missing"),
        pytest.param(subscribe(payload={"query": 5}), id="query-int"),
        pytest.param(subscribe(payload={"query": None}), id="query-null"),
        pytest.param(subscribe(payload={"query": ME, "operationName": 5}), id="operation-name-int"),
        pytest.param(subscribe(payload={"query": ME, "variables": [1]}), id="variables-list"),
        pytest.param(subscribe(payload={"query": ME, "variables": "x"}), id="variables-str"),
        pytest.param(subscribe(payload={"query": ME, "extensions": "x"}), id="extensions-str"),
        pytest.param(subscribe(id=["x"]), id="id-list"),
        pytest.param(subscribe(id={"a": 1}), id="id-object"),
        pytest.param(subscribe(id=5), id="id-int"),
        pytest.param({"type": "subscribe", "payload": {"query": ME}}, id="id-missing"),
        pytest.param({"type": "complete", "id": ["x"]}, id="complete-id-list"),
        pytest.param({"type": "complete"}, id="complete-id-missing"),
        pytest.param({"type": ["subscribe"]}, id="type-list"),
        pytest.param([1, 2], id="frame-list"),
        pytest.param(None, id="frame-null"),
        pytest.param("x", id="frame-string"),
    ],
)
async def test_a_malformed_frame_after_sign_in_is_4400(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    caplog: pytest.LogCaptureFixture,
    message: Any,
) -> None:
    logging.getLogger("uvicorn.error").propagate = True
    token = (await sign_up(live_gql)).token
    async with ws_client(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await ws.connection.send(json.dumps(message))
        assert await close_code(ws) == 4400
    await asyncio.sleep(0.05)
    assert_no_errors_logged(caplog)


async def test_well_formed_optional_fields_still_work(
    live_server: LiveServer, live_gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await sign_up(live_gql)).token
    async with ws_client(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        await ws.send(
            {
                "type": "subscribe",
                "id": "1",
                "payload": {
                    "query": "query Me { me { id } }",
                    "operationName": "Me",
                    "variables": None,
                    "extensions": {},
                },
            }
        )
        reply = await asyncio.wait_for(ws.receive(), timeout=5)
        assert reply["type"] == "next"
        assert reply["payload"]["data"]["me"]["id"]
        await ws.send({"type": "subscribe", "id": "2", "payload": {"query": ME}})
        assert (await asyncio.wait_for(ws.receive(), timeout=5))["type"] in {"complete", "next"}
    assert_no_errors_logged(caplog)


def start(**fields: Any) -> dict[str, Any]:
    return {"type": "start", "id": "1", "payload": {"query": ME}, **fields}


LEGACY_GARBAGE = [
    pytest.param(start(payload=None), id="payload-null"),
    pytest.param(start(payload=[ME]), id="payload-list"),
    pytest.param({"type": "start", "id": "1"}, id="payload-missing"),
    pytest.param(start(payload={"query": 5}), id="query-int"),
    pytest.param(start(payload={"query": ME, "operationName": 5}), id="operation-name-int"),
    pytest.param(start(payload={"query": ME, "variables": [1]}), id="variables-list"),
    pytest.param(start(id=["x"]), id="id-list"),
    pytest.param(start(id=5), id="id-int"),
    pytest.param({"type": "start", "payload": {"query": ME}}, id="id-missing"),
    pytest.param({"type": "stop", "id": {"a": 1}}, id="stop-id-object"),
    pytest.param({"type": "stop"}, id="stop-id-missing"),
    pytest.param({"type": ["start"]}, id="type-list"),
    pytest.param({}, id="type-missing"),
    pytest.param([1, 2], id="frame-list"),
    pytest.param(None, id="frame-null"),
    pytest.param(5, id="frame-number"),
]


async def legacy_close_code(ws: ClientConnection) -> int | None:
    """The close frame's code; only keep-alive messages may come before it."""
    try:
        async with asyncio.timeout(5):
            while True:
                assert json.loads(await ws.recv())["type"] == "ka"
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


@pytest.mark.parametrize("signed_in", [False, True], ids=["before-init", "after-init"])
@pytest.mark.parametrize("message", LEGACY_GARBAGE)
async def test_a_malformed_legacy_protocol_frame_is_4400(
    legacy_server: LiveServer, caplog: pytest.LogCaptureFixture, message: Any, signed_in: bool
) -> None:
    """The legacy `graphql-ws` protocol (when enabled) answers a frame that is not one of its
    messages as graphql-transport-ws does: 4400, and nothing logged as an error (Strawberry's
    handler raised on it in the ASGI application, and dropped the socket)."""
    logging.getLogger("uvicorn.error").propagate = True
    async with httpx.AsyncClient(base_url=legacy_server.http_url) as http:
        token = (await sign_up(GraphQLClient(http))).token
    legacy = [Subprotocol("graphql-ws")]
    async with connect(f"{legacy_server.ws_url}/graphql", subprotocols=legacy) as ws:
        if signed_in:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps(message))
        assert await legacy_close_code(ws) == 4400
    await asyncio.sleep(0.05)
    assert_no_errors_logged(caplog)


async def test_a_legacy_protocol_query_is_refused_with_its_code(
    legacy_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The legacy protocol carries subscriptions only: a query gets its `error` message with
    BAD_REQUEST, and nothing is logged as an unexpected error."""
    async with httpx.AsyncClient(base_url=legacy_server.http_url) as http:
        token = (await sign_up(GraphQLClient(http))).token
    legacy = [Subprotocol("graphql-ws")]
    async with connect(f"{legacy_server.ws_url}/graphql", subprotocols=legacy) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps(start()))
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] == "ka":
            pass
    assert (message["type"], message["id"]) == ("error", "1"), message
    assert message["payload"]["extensions"]["code"] == "BAD_REQUEST"
    assert_no_errors_logged(caplog)
