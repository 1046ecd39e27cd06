"""Reference relays for the streaming scenario: what a relay costs with nothing of gql_chat in it.

    python -m bench.reference_relays tcp PORT UPSTREAM_PORT
    python -m bench.reference_relays http PORT UPSTREAM_PORT

`tcp` copies bytes both ways: one more loopback hop each way, the floor of any relay.
`http` is a bare Starlette endpoint under uvicorn (the settings gql_chat runs with) that forwards
the request body with gql_chat's own httpx client and streams the SSE body back unparsed: the
floor of this stack, without GraphQL, authentication, the store or a websocket.

The streaming scenario reads a reply through each, as its direct baseline does, so the added
first-token time of gql_chat can be set beside theirs, measured in the same run."""

from __future__ import annotations

import asyncio
import sys
from contextlib import suppress

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gql_chat.config import Settings
from gql_chat.llm.openrouter import build_http_client

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


def main() -> None:
    kind, port, upstream_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if kind == "tcp":
        with suppress(KeyboardInterrupt):  # how the benchmark stops it
            uvloop.run(serve_tcp(port, upstream_port))
    else:
        uvicorn.run(
            http_app(upstream_port),
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
