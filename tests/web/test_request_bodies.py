"""A request body that stops short of its Content-Length, against a real uvicorn (raw sockets).

uvicorn has no timer on a request body (its keep-alive timeout runs only between requests): a
client that stalls holds the request until it gives up and closes, and then Starlette's
`ClientDisconnect` used to escape the app, logged by uvicorn as "Exception in ASGI application"
with a traceback. A client leaving is the client's business: no traceback, no 500, one log line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from gql_chat.web import middleware
from tests.conftest import LiveServer

PARTIAL_REQUEST = (
    b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"query":'
)


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Also uvicorn's own error log, which does not propagate to the root logger under the
    test server's logging config."""
    caplog.set_level(logging.INFO)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn_errors.removeHandler(caplog.handler)


async def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    """The access-log lines, once `count` have been written (the server logs after answering)."""
    for _ in range(200):
        lines = [r.getMessage() for r in caplog.records if r.name == "gql_chat.http"]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} access-log lines, got {caplog.records}")


def assert_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert "Exception in ASGI application" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert " 500" not in caplog.text


async def assert_still_serving(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(
    live_server: LiveServer, server_logs: pytest.LogCaptureFixture
) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    writer.write(PARTIAL_REQUEST)
    await writer.drain()
    await asyncio.sleep(0.2)  # the app is now waiting for the rest of the body
    writer.close()
    await writer.wait_closed()

    [line] = await access_lines(server_logs, 1)
    assert_no_server_error(server_logs)
    assert line == "POST /graphql 0 (client disconnected before the whole body arrived)"
    await assert_still_serving(live_server)


async def test_a_client_that_half_closes_mid_body_gets_no_500(
    live_server: LiveServer, server_logs: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    writer.write(PARTIAL_REQUEST)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write_eof()  # "I have sent everything" while 91 bytes are still owed
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()

    assert b"500" not in answer.partition(b"\r\n")[0]
    await access_lines(server_logs, 1)
    assert_no_server_error(server_logs)
    await assert_still_serving(live_server)


async def test_a_stalled_body_is_408_and_the_connection_closes(
    live_server: LiveServer,
    server_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(middleware, "BODY_READ_TIMEOUT", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    writer.write(PARTIAL_REQUEST)
    await writer.drain()
    # Read to the end: the server answers and then closes, without waiting for the rest.
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {
        "errors": [
            {
                "message": "Request Timeout: the request body stopped arriving.",
                "extensions": {"code": "REQUEST_TIMEOUT"},
            }
        ]
    }
    [line] = await access_lines(server_logs, 1)
    assert line == "POST /graphql 408 (request body stalled for 0.3 s)"
    assert_no_server_error(server_logs)
    await assert_still_serving(live_server)


async def test_a_slow_but_steady_body_is_not_cut_off(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout is for a body that stops, not for one that is slow: each chunk resets it."""
    monkeypatch.setattr(middleware, "BODY_READ_TIMEOUT", 0.3)
    body = b'{"query": "{ __typename }"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    for start in range(0, len(body), 9):
        await asyncio.sleep(0.15)
        writer.write(body[start : start + 9])
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"data":{"__typename":"Query"}}')
