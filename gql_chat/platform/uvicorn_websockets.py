"""uvicorn's websockets-sansio protocol with less memory per open websocket.

An idle websocket (a tab open on `userEvents`) is mostly the protocol object uvicorn keeps for
it. Of that, uvicorn allocates, per connection and for its whole life:

- an `asyncio.Queue` of received messages (four deques and an Event: about 3.3 KiB) that
  holds at most a message or two, since the app reads as the frames come;
- an `asyncio.Event` gating sends while the transport is paused (0.9 KiB with its deque);
- the handshake's parsed request and its response, headers and all (about 7 KiB), which
  nothing reads once the handshake has been answered (the ASGI scope has its own copy of the
  request's headers): uvicorn keeps both, and websockets' `ServerProtocol.parse` generator
  keeps the request as a local for the connection's life, since its frame loop runs inside it.

`LeanWebSocketsProtocol` replaces the first two with small slotted equivalents and forgets the
handshake once it is answered, restarting websockets' frame parser from its frame loop
(`Protocol.parse`, which keeps its state on the protocol, not in the generator) while no byte
of a frame has arrived. It relies on how `WebSocketsSansIOProtocol` uses these attributes
(`queue.put_nowait/get/empty`, `writable.set/clear/wait`, `request` and `response` only before
the handshake completes) and on websockets' `parser` and `reader`, so
`require_supported_versions` refuses a uvicorn or websockets it was not checked against."""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol

from gql_chat.platform.lean_asyncio import LeanEvent, LeanQueue
from gql_chat.platform.uvicorn_limits import DenialCompletingWebSocketsProtocol
from gql_chat.platform.versions import distribution_version, require_versions

SUPPORTED_UVICORN = ("0.54.",)
SUPPORTED_WEBSOCKETS = ("17.",)
"""The versions whose websocket protocol internals this module was checked against."""


def require_supported_versions() -> None:
    """Stop start-up on a uvicorn or websockets whose protocol internals this module was not
    checked against."""
    require_versions(
        __name__,
        {"uvicorn": SUPPORTED_UVICORN, "websockets": SUPPORTED_WEBSOCKETS},
        {"uvicorn": uvicorn.__version__, "websockets": distribution_version("websockets")},
    )


class LeanWebSocketsProtocol(DenialCompletingWebSocketsProtocol):
    """The app's websocket protocol (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.forget_handshake()

    def forget_handshake(self) -> None:
        """uvicorn reads the handshake's request and response only until it is answered; the
        parser is restarted only between frames (nothing buffered: a client waits for the
        101 before it sends a frame), never in the middle of one."""
        self.__dict__.pop("request", None)
        self.__dict__.pop("response", None)
        reader = self.conn.reader
        if not reader.buffer and not reader.eof and self.conn.parser_exc is None:
            self.conn.parser = Protocol.parse(self.conn)
            next(self.conn.parser)


def websocket_protocol() -> type[WebSocketsSansIOProtocol]:
    """The `ws` option for uvicorn."""
    require_supported_versions()
    return LeanWebSocketsProtocol
