"""What a client can hold on a TCP connection before its request head is complete: a deadline
for the head, a size limit on it, and a cap on open connections (uvicorn has none of them with
httptools; see gql_chat/platform/uvicorn_limits.py). Real uvicorn, raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
import uvicorn

from gql_chat.config import Settings
from gql_chat.platform import uvicorn_limits
from gql_chat.platform.versions import UnsupportedVersion
from tests.conftest import LiveServer

HEADER_TIMEOUT = 0.5
MAX_HEADER_BYTES = 8192
MAX_CONNECTIONS = 12


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        header_timeout=HEADER_TIMEOUT,
        max_header_bytes=MAX_HEADER_BYTES,
        max_connections=MAX_CONNECTIONS,
    )


async def open_raw(server: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `within` s)."""
    received = b""
    async with asyncio.timeout(within):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


async def healthz(server: LiveServer) -> int:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        return (await client.get("/healthz")).status_code


# The head deadline


async def test_a_connection_that_sends_nothing_is_closed(live_server: LiveServer) -> None:
    reader, writer = await open_raw(live_server)
    started = time.monotonic()
    assert await read_until_closed(reader, within=HEADER_TIMEOUT + 3) == b""
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.8
    writer.close()


async def test_a_head_sent_one_byte_at_a_time_is_cut_off_with_408(
    live_server: LiveServer,
) -> None:
    reader, writer = await open_raw(live_server)
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    closed = asyncio.create_task(read_until_closed(reader, within=HEADER_TIMEOUT + 3))
    for byte in head:
        if closed.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.02)
    received = await closed
    assert received.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEADER_TIMEOUT + 3
    writer.close()


async def test_blank_lines_between_requests_do_not_hold_a_connection(
    live_server: LiveServer,
) -> None:
    """httptools skips CRLFs before a request line: they must not keep renewing the wait."""
    reader, writer = await open_raw(live_server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"}")).startswith(b"HTTP/1.1 200 ")
    closed = asyncio.create_task(read_until_closed(reader, within=HEADER_TIMEOUT + 3))
    while not closed.done():
        writer.write(b"\r\n")
        await asyncio.sleep(0.05)
    assert await closed == b""
    writer.close()


async def test_a_slow_but_complete_head_and_keep_alive_still_work(
    live_server: LiveServer,
) -> None:
    reader, writer = await open_raw(live_server)
    for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        writer.write(part)
        await asyncio.sleep(HEADER_TIMEOUT / 5)
    assert (await reader.readuntil(b"}")).startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(HEADER_TIMEOUT / 2)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"}")).startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_a_request_body_is_not_under_the_head_deadline(live_server: LiveServer) -> None:
    """Once the head is complete the app's own body timeout applies, not the head's."""
    reader, writer = await open_raw(live_server)
    body = b'{"query": "{ __typename }"}'
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    await asyncio.sleep(HEADER_TIMEOUT * 2)
    writer.write(body[5:])
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_a_websocket_upgrade_is_not_cut_off_by_the_head_deadline(
    live_server: LiveServer,
) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"{live_server.ws_url}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as ws:
        await asyncio.sleep(HEADER_TIMEOUT * 2)
        await ws.send('{"type": "ping"}')
        assert "pong" in str(await asyncio.wait_for(ws.recv(), 5))


# The head size limit


async def test_a_head_over_the_limit_gets_431(live_server: LiveServer) -> None:
    reader, writer = await open_raw(live_server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * MAX_HEADER_BYTES)
    writer.write(b"\r\n\r\n")
    received = await read_until_closed(reader, within=3)
    assert received.startswith(b"HTTP/1.1 431 ")
    writer.close()


async def test_an_unfinished_header_over_the_limit_is_refused_before_it_ends(
    live_server: LiveServer,
) -> None:
    """httptools buffers a header until it ends: the limit counts the bytes received."""
    _, writer = await open_raw(live_server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    assert await bytes_sent_until_refused(writer, 50 * MAX_HEADER_BYTES) < 50 * MAX_HEADER_BYTES
    writer.close()


async def bytes_sent_until_refused(writer: asyncio.StreamWriter, limit: int) -> int:
    sent = 0
    try:
        while sent < limit:
            writer.write(b"a" * 4096)
            await writer.drain()
            sent += 4096
            await asyncio.sleep(0.001)
    except (ConnectionError, OSError):
        return sent
    return sent


async def test_many_headers_over_the_limit_get_431(live_server: LiveServer) -> None:
    reader, writer = await open_raw(live_server)
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(MAX_HEADER_BYTES // 8))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert (await read_until_closed(reader, within=3)).startswith(b"HTTP/1.1 431 ")
    writer.close()


async def test_a_head_under_the_limit_is_served(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.http_url) as client:
        response = await client.get("/healthz", headers={"X-Pad": "a" * (MAX_HEADER_BYTES // 2)})
    assert response.status_code == 200


# The connection cap


async def test_connections_over_the_cap_are_closed_at_once_and_the_server_recovers(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    uvicorn_limits._last_refusal_log[0] = -uvicorn_limits.REFUSAL_LOG_INTERVAL
    idle = [await open_raw(live_server) for _ in range(MAX_CONNECTIONS)]
    await asyncio.sleep(0.05)
    extra = [await open_raw(live_server) for _ in range(5)]
    for reader, _ in extra:
        assert await read_until_closed(reader, within=HEADER_TIMEOUT / 2) == b""
    refusals = [r for r in caplog.records if "GQL_CHAT_MAX_CONNECTIONS" in r.getMessage()]
    assert len(refusals) == 1  # once, not once per connection
    # The idle ones are closed at the head deadline, and the server answers again.
    for reader, _ in idle:
        assert await read_until_closed(reader, within=HEADER_TIMEOUT + 3) == b""
    for _, writer in idle + extra:
        writer.close()
    await asyncio.sleep(0.05)
    assert await healthz(live_server) == 200


def test_an_unchecked_uvicorn_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "__version__", "0.99.0")
    with pytest.raises(UnsupportedVersion, match="uvicorn"):
        uvicorn_limits.limited_http_protocol(head_timeout=1, max_head_bytes=4096, max_connections=1)
