"""The OpenRouter client's sockets: httpcore's network backend on plain asyncio streams.

httpcore's default backend under asyncio is anyio's. Every read of a streamed reply then
enters an anyio cancel scope, and over TLS anyio runs the TLS state machine in Python over a
memory BIO. Asyncio streams use the event loop's own transports (uvloop's, in C, with its TLS)
and a plain `asyncio.timeout`. Profiled on fifty streamed replies, reading the provider's
chunks was a third of the server's CPU; this backend cuts the CPU cost of a chunk by about a
fifth (99 to 77 µs, 40 streams on uvloop). Errors map to the same httpcore exceptions as
anyio's backend raises, so httpx and our provider client see no difference.

Why it is a patch: httpcore's `AsyncConnectionPool(network_backend=...)` is public, but httpx
0.28 builds its transport's pool inside `AsyncHTTPTransport.__init__` with no way to pass a
backend, and a client given its own `transport=` no longer honours proxies from the environment
(httpx sets `allow_env_proxies = trust_env and transport is None`). So `use_asyncio_streams`
reaches httpx's private `client._transport`, `client._mounts` and `transport._pool`, and
httpcore's private `pool._network_backend`; the backend itself uses httpcore's private
`is_socket_readable` (and its `SOCKET_OPTION` type). `require_supported_versions` stops start-up
on an httpx or httpcore version this was not checked against.
"""

# ruff: noqa: ASYNC109 (httpcore's interface passes timeouts as parameters)

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION
from httpcore._utils import is_socket_readable

from gql_chat.platform.lean_asyncio import MovingDeadline
from gql_chat.platform.versions import require_versions

SUPPORTED_HTTPCORE = ("1.0.",)
SUPPORTED_HTTPX = ("0.28.",)
"""The versions whose private attributes (see the module's docstring) this was checked against."""

# httpcore's names for what asyncio transports call otherwise.
TRANSPORT_INFO = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


def require_supported_versions() -> None:
    """Stop start-up when httpx or httpcore is a version this module was not checked against."""
    require_versions(
        __name__,
        {"httpcore": SUPPORTED_HTTPCORE, "httpx": SUPPORTED_HTTPX},
        {"httpcore": httpcore.__version__, "httpx": httpx.__version__},
    )


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._read_deadline = MovingDeadline()
        """A streamed reply reads once per chunk: one moving timer, not one per read."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._reader.read(max_bytes)
            with self._read_deadline.after(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        """Not waiting for the close to finish: a TLS close waits for the peer's reply, and
        httpcore closes connections while it is being cancelled."""
        self._read_deadline.close()
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:  # ssl.SSLError included
            await self.aclose()
            raise httpcore.ConnectError(exc) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._writer.transport
        if info == "is_readable":
            # An idle keep-alive connection that is readable was closed (or sent junk) by the
            # server. Asyncio reads eagerly, so an end of stream may already be in the reader.
            return self._reader.at_eof() or is_socket_readable(transport.get_extra_info("socket"))
        name = TRANSPORT_INFO.get(info)
        return transport.get_extra_info(name) if name else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        sock = writer.transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def use_asyncio_streams(client: httpx.AsyncClient) -> None:
    """Give the client's connection pools (direct, and any proxy from the environment) this
    backend. httpx has no parameter for it, so this sets the pool's `_network_backend`, which
    every httpcore 1.x pool has; a pool without it keeps its default backend."""
    require_supported_versions()
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = AsyncioBackend()
