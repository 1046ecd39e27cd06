"""The asyncio network backend under httpx: plain and TLS connections, timeouts, dead
keep-alive connections, and that the provider client really uses it."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx
import pytest
import trustme
import uvloop

from gql_chat.llm.openrouter import OpenRouterProvider, build_http_client
from gql_chat.llm.types import ChatRequest, PromptMessage, TextDelta
from gql_chat.platform import httpcore_network
from gql_chat.platform.httpcore_network import AsyncioBackend, use_asyncio_streams
from gql_chat.platform.versions import UnsupportedVersion
from tests.conftest import openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def answer_once_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers one request as if keeping the connection alive, then closes it."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()


async def answer_every_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes


@asynccontextmanager
async def tcp_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """A server on 127.0.0.1; yields its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()


def asyncio_client(**kwargs: Any) -> httpx.AsyncClient:
    client = httpx.AsyncClient(**kwargs)
    use_asyncio_streams(client)
    return client


async def test_the_provider_client_connects_through_it(
    fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[tuple[str, int]] = []
    real_connect = AsyncioBackend.connect_tcp

    async def spy(self: AsyncioBackend, host: str, port: int, **kwargs: Any) -> Any:
        connects.append((host, port))
        return await real_connect(self, host, port, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", spy)
    settings = openrouter_settings(fake_openrouter)
    request = ChatRequest(model="m", messages=[PromptMessage("user", "Hi")])
    async with build_http_client(settings) as client:
        provider = OpenRouterProvider(settings, client)
        for _ in range(2):
            events = [e async for e in provider.stream(request)]
            assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello, world!"
    assert connects == [("127.0.0.1", fake_openrouter.port)]  # one connection, kept alive


async def test_a_keep_alive_connection_the_server_closed_is_replaced() -> None:
    async with tcp_server(answer_once_then_close) as port, asyncio_client() as client:
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.text == "ok"
            await asyncio.sleep(0.2)  # the server has closed the idle connection by now


async def test_socket_options_are_applied() -> None:
    option = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    transport = httpx.AsyncHTTPTransport(socket_options=[option])
    async with (
        tcp_server(answer_every_request) as port,
        httpx.AsyncClient(transport=transport) as client,
    ):
        use_asyncio_streams(client)
        async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
            stream = response.extensions["network_stream"]
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert stream.get_extra_info("server_addr")[1] == port
            assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
            assert stream.get_extra_info("ssl_object") is None
            assert stream.get_extra_info("anything else") is None


async def test_a_silent_server_is_a_read_timeout() -> None:
    async with tcp_server(never_answer) as port, asyncio_client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        async with asyncio_client() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_connect_that_hangs_is_a_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(asyncio, "open_connection", hang)
    with pytest.raises(httpcore.ConnectTimeout):
        await AsyncioBackend().connect_tcp("127.0.0.1", 9, timeout=0.05)


async def test_writing_to_a_lost_connection_is_a_write_error() -> None:
    async with tcp_server(never_answer) as port:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        await stream.aclose()
        await asyncio.sleep(0.05)  # the transport reports the connection lost
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=1)


async def tls_round_trip() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with tcp_server(answer_every_request, server_context) as port:
        async with asyncio_client(verify=client_context) as client:
            for _ in range(2):
                async with client.stream("GET", f"https://localhost:{port}/") as response:
                    assert await response.aread() == b"ok"
                    stream = response.extensions["network_stream"]
                    assert stream.get_extra_info("ssl_object") is not None
        async with asyncio_client() as untrusting:  # the system's CAs do not know ours
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(f"https://localhost:{port}/")


async def test_tls_on_the_default_event_loop() -> None:
    await tls_round_trip()


def test_tls_on_uvloop() -> None:
    """The server runs on uvloop, whose TLS transport is a different implementation."""
    uvloop.run(tls_round_trip())


@pytest.mark.parametrize(("library", "version"), [(httpx, "0.29.0"), (httpcore, "2.0.0")])
async def test_an_unchecked_httpx_or_httpcore_version_stops_start_up(
    library: Any, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "__version__", version)
    with pytest.raises(
        UnsupportedVersion, match=rf"gql_chat\.platform\.httpcore_network .*{re.escape(version)}"
    ):
        httpcore_network.require_supported_versions()
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsupportedVersion):
            use_asyncio_streams(client)
