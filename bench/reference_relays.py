"""Reference relays for the streaming scenario: what a relay costs with nothing of gql_chat in it.

    python -m bench.reference_relays tcp PORT UPSTREAM_PORT
    python -m bench.reference_relays http PORT UPSTREAM_PORT
    python -m bench.reference_relays h11 PORT UPSTREAM_PORT

`tcp` copies bytes both ways: one more loopback hop each way, the floor of any relay.
`http` is a bare Starlette endpoint under uvicorn (the settings gql_chat runs with) that forwards
the request body with gql_chat's own httpx client and streams the SSE body back unparsed: the
floor of this stack, without GraphQL, authentication, the store or a websocket.
`h11` is the same endpoint with a bare `h11` connection over asyncio streams in place of httpx
(one kept-alive connection, one request at a time): what httpx's part of that floor is.

After its streaming scenarios, the benchmark reads replies one at a time through each, as it
reads the direct baseline, so that gql_chat's added first-token time can be set beside theirs,
measured in the same run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import suppress

import h11
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gql_chat.config import Settings
from gql_chat.llm.openrouter import build_http_client
from gql_chat.platform import install as install_platform

PATH = "/api/v1/chat/completions"


async def serve_tcp(port: int, upstream_port: int) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
        finally:
            sink.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        with suppress(ConnectionError):
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def http_app(upstream_port: int) -> Starlette:
    install_platform()
    client = build_http_client(Settings.model_construct())
    upstream = f"http://127.0.0.1:{upstream_port}{PATH}"

    async def completions(request: Request) -> Response:
        forwarded = client.build_request(
            "POST",
            upstream,
            content=await request.body(),
            headers={"content-type": "application/json"},
        )
        response = await client.send(forwarded, stream=True)
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            media_type="text/event-stream",
            background=BackgroundTask(response.aclose),
        )

    return Starlette(routes=[Route(PATH, completions, methods=["POST"])])


class BareUpstream:
    """One kept-alive HTTP/1.1 connection to the upstream, spoken with h11 alone."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._connection = h11.Connection(h11.CLIENT)

    async def relay(self, body: bytes) -> AsyncIterator[bytes]:
        """The response body's chunks, after one empty chunk when the response has begun."""
        async with self._lock:
            if self._streams is None:
                self._streams = await asyncio.open_connection("127.0.0.1", self._port)
            else:
                self._connection.start_next_cycle()
            reader, writer = self._streams
            headers = [
                ("host", "127.0.0.1"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ]
            request = h11.Request(method="POST", target=PATH, headers=headers)
            try:
                for outgoing in (request, h11.Data(data=body), h11.EndOfMessage()):
                    writer.write(self._connection.send(outgoing) or b"")
                while not isinstance(incoming := self._connection.next_event(), h11.EndOfMessage):
                    if incoming is h11.NEED_DATA:
                        self._connection.receive_data(await reader.read(65536))
                    elif isinstance(incoming, h11.Response):
                        yield b""
                    elif isinstance(incoming, h11.Data):
                        yield bytes(incoming.data)
            except BaseException:  # a reply cut short leaves the connection mid-response
                writer.close()
                self._streams, self._connection = None, h11.Connection(h11.CLIENT)
                raise


def h11_app(upstream_port: int) -> Starlette:
    upstream = BareUpstream(upstream_port)

    async def completions(request: Request) -> Response:
        chunks = upstream.relay(await request.body())
        # Answer once the upstream has, as the httpx relay (and any real proxy) does: the
        # client then reads the head and the first event together in both.
        await anext(chunks)
        return StreamingResponse(chunks, media_type="text/event-stream")

    return Starlette(routes=[Route(PATH, completions, methods=["POST"])])


def main() -> None:
    kind, port, upstream_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if kind == "tcp":
        with suppress(KeyboardInterrupt):  # how the benchmark stops it
            uvloop.run(serve_tcp(port, upstream_port))
    else:
        uvicorn.run(
            (h11_app if kind == "h11" else http_app)(upstream_port),
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="off",
        )


if __name__ == "__main__":
    main()
