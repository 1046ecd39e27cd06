"""Limits uvicorn does not have: a deadline for a request head, a size limit on it, and a cap
on open connections. `gql-chat serve` and the tests' live server run uvicorn with this
protocol (`gql_chat.cli.uvicorn_options`).

uvicorn's httptools protocol starts its only timer (keep-alive) after a response, so a
connection that sends nothing, or a request head one byte at a time, stays open for ever
(320 idle connections exhausted a server with `ulimit -n 300`); and httptools has no header
size limit (h11's `h11_max_incomplete_event_size` has no httptools counterpart): three
connections sending 100 MB of headers each raised the server's memory by 300 MB.

`LimitedHttpToolsProtocol` subclasses uvicorn's `HttpToolsProtocol` and relies on its
internals (the parser callbacks, `cycle`, `pipeline`, `connections`, the keep-alive timer), so
it refuses to start on a uvicorn or httptools version it was not checked against:
`require_supported_versions` fails loudly at start-up; re-check this module when upgrading.

One fix lives here too, for the same reason: `DenialCompletingWebSocketsProtocol`. uvicorn's
websockets-sansio protocol never marks a handshake answered with ASGI's denial response
(`websocket.http.response.*`, our HTTP 429 for one websocket too many) as complete, so it
logged "ASGI callable returned without completing handshake." at ERROR for every refusal
(wsproto's protocol marks it). No sign-in is needed to cause one."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import httptools
import uvicorn
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gql_chat.platform.versions import UnsupportedVersion, require_versions

logger = logging.getLogger(__name__)

SUPPORTED_UVICORN = ("0.54.",)
"""uvicorn versions whose `HttpToolsProtocol` this module was checked against."""
SUPPORTED_HTTPTOOLS = ("0.6.", "0.7.", "0.8.", "0.9.")
REFUSAL_LOG_INTERVAL = 60.0
"""At most one warning per this many seconds about refused connections (a flood of
connections must not become a flood of log lines)."""


def require_supported_versions() -> None:
    """Stop start-up when uvicorn or httptools is a version this module was not checked
    against: the subclass below depends on their internals."""
    require_versions(
        __name__,
        {"uvicorn": SUPPORTED_UVICORN, "httptools": SUPPORTED_HTTPTOOLS},
        {"uvicorn": uvicorn.__version__, "httptools": httptools.__version__},
    )
    for cls, name in (
        (HttpToolsProtocol, "connection_made"),
        (HttpToolsProtocol, "connection_lost"),
        (HttpToolsProtocol, "data_received"),
        (HttpToolsProtocol, "on_message_begin"),
        (HttpToolsProtocol, "on_headers_complete"),
        (HttpToolsProtocol, "send_400_response"),
        (WebSocketsSansIOProtocol, "send"),
    ):
        if not callable(getattr(cls, name, None)):
            raise UnsupportedVersion(f"uvicorn's {cls.__name__} has no {name}()")


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the request head is over the limit."""


def _response(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


REQUEST_TIMEOUT = _response(b"408 Request Timeout")
HEAD_TOO_LARGE = _response(b"431 Request Header Fields Too Large")
_last_refusal_log = [-REFUSAL_LOG_INTERVAL]


def _log_refusal(message: str, *args: object) -> None:
    now = time.monotonic()
    if now - _last_refusal_log[0] >= REFUSAL_LOG_INTERVAL:
        _last_refusal_log[0] = now
        logger.warning(message, *args)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus:

    - a request head (request line and headers) must arrive complete within `head_timeout`
      seconds of the connection's opening, of its first byte, or of the first byte after the
      previous response; otherwise the connection is closed (with 408 when part of a head
      came). A connection that sends nothing is closed after `head_timeout` too.
    - a request head of more than `max_head_bytes` gets 431 and the connection is closed
      (counted on the bytes received, before httptools buffers a header it has not finished).
    - at most `max_connections` open connections (websockets included): one more is closed
      as soon as it is accepted, before it is read, so its file descriptor is freed at once.
    """

    def __init__(
        self,
        *args: Any,
        head_timeout: float,
        max_head_bytes: int,
        max_connections: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self.max_head_bytes = max_head_bytes
        self.max_connections = max_connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over_cap = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        if over_cap:
            _log_refusal(
                "%d connections open (GQL_CHAT_MAX_CONNECTIONS): closing new ones",
                self.max_connections,
            )
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        """uvicorn drops its parser (which holds this protocol's callbacks) when a connection
        is lost; an upgraded connection is never lost here, its transport has a new protocol.
        Dropped here too, or each websocket left this protocol and its parser in a cycle for
        the cyclic garbage collector."""
        super().handle_websocket_upgrade()
        self._cancel_head_timer()
        self.parser = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (
            self._in_head or self.cycle is None or self.cycle.response_complete
        ):
            # Bytes while no request runs: a head is on its way (or only the blank lines
            # httptools skips before one); it gets `head_timeout` from here.
            self._arm_head_timer()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(HEAD_TOO_LARGE)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            raise _HeadTooLarge
        super().on_headers_complete()

    def _refuse(self, response: bytes) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def limited_http_protocol(*, head_timeout: float, max_head_bytes: int, max_connections: int) -> Any:
    """The `http` option for uvicorn: `LimitedHttpToolsProtocol` with these limits. (A
    partial of a module-level class: it pickles, for uvicorn's reloader.)"""
    require_supported_versions()
    return functools.partial(
        LimitedHttpToolsProtocol,
        head_timeout=head_timeout,
        max_head_bytes=max_head_bytes,
        max_connections=max_connections,
    )


class DenialCompletingWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, with a handshake answered by a denial response
    counted as complete (see the module's docstring)."""

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True


def websocket_protocol() -> type[WebSocketsSansIOProtocol]:
    """The `ws` option for uvicorn."""
    require_supported_versions()
    return DenialCompletingWebSocketsProtocol
