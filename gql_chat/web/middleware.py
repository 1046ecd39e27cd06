"""Pure ASGI middleware (they also see websockets and never buffer streaming responses)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_chat.api.client_ip import client_ip
from gql_chat.platform.lean_asyncio import CoarseTimeouts
from gql_chat.request_scope import client_ip_var, request_id_var

logger = logging.getLogger("gql_chat.http")

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
MULTIPART = b"multipart/form-data"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestContextMiddleware:
    """A request id for every request and websocket (from `X-Request-ID` when well formed),
    echoed back, and one access-log line per HTTP request: method, path, status, duration.
    The query string is never logged: it can carry variables."""

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self._trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        supplied = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if REQUEST_ID_PATTERN.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        peer = scope.get("client")
        ip_token = client_ip_var.set(
            client_ip(HTTPConnection(scope), self._trusted_proxies)
            if self._trusted_proxies
            else (peer[0] if peer else None)  # the same answer, without building a connection
        )
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http" and logger.isEnabledFor(logging.INFO):
                extra = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }
                client_error = scope.get(CLIENT_ERROR_SCOPE_KEY)
                if client_error is None:
                    logger.info("%s %s %s", scope["method"], scope["path"], status, extra=extra)
                else:
                    logger.info(
                        "%s %s %s (%s)",
                        scope["method"],
                        scope["path"],
                        status,
                        client_error,
                        extra={**extra, "client_error": client_error},
                    )
            request_id_var.reset(token)
            client_ip_var.reset(ip_token)


class SecurityHeadersMiddleware:
    """nosniff, frame denial, no referrer, and a deny-all CSP unless the page set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", API_CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    pass


class _BodyStalled(Exception):
    pass


class _ClientGone(Exception):
    pass


BODY_READ_TIMEOUT = 30.0
"""Seconds a request may go without sending any of the body it announced. uvicorn has no such
limit (its keep-alive timeout runs only between requests), so a client that stops short of its
Content-Length would otherwise hold the request open until it gives up itself."""

BODY_TIMEOUT_RESOLUTION = 0.1
"""How late a stalled body may be noticed, in seconds: the body's reads share one coarse timer
per event loop (`CoarseTimeouts`), since a body nearly always arrives with its headers."""

CLIENT_ERROR_SCOPE_KEY = "gql_chat.client_error"
"""Where the body middleware notes why a request ended without a normal answer; the access-log
line of `RequestContextMiddleware` carries it."""


REJECTION_CODES = {413: "PAYLOAD_TOO_LARGE", 408: "REQUEST_TIMEOUT"}


class BodySizeLimitMiddleware:
    """The request body, as a client error rather than a server one: 413 for a body over the
    limit (declared or streamed), 408 for one that stalls (no bytes for `body_timeout` seconds),
    and a quiet end when the client leaves mid-body (uvicorn's `http.disconnect`, which
    Starlette turns into `ClientDisconnect`; uncaught, uvicorn would log it as "Exception in ASGI
    application" with a traceback). Outside the body, `receive` is left alone: listening for a
    disconnect after the body is how streaming responses notice a client leaving."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        body_timeout: float | None = None,
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout
        self.max_upload_bytes = max_upload_bytes or max_bytes
        self.body_timeouts = CoarseTimeouts(BODY_TIMEOUT_RESOLUTION)

    def limit_for(self, headers: dict[bytes, bytes]) -> int:
        """Multipart bodies (file uploads) have their own, larger limit."""
        content_type = headers.get(b"content-type", b"").lower()
        return self.max_upload_bytes if content_type.startswith(MULTIPART) else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        limit = self.limit_for(headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, 413, f"Request body too large (limit {limit} bytes).")
            return
        timeout = BODY_READ_TIMEOUT if self.body_timeout is None else self.body_timeout
        received = 0
        body_complete = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                return await receive()
            try:
                with self.body_timeouts.after(timeout):
                    message = await receive()
            except TimeoutError:
                raise _BodyStalled from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
                body_complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send, 413, f"Request body too large (limit {limit} bytes).")
        except _BodyStalled:
            scope[CLIENT_ERROR_SCOPE_KEY] = f"request body stalled for {timeout:g} s"
            if not started:
                await self._reject(
                    send, 408, "Request Timeout: the request body stopped arriving.", close=True
                )
        except _ClientGone:
            # Nobody is left to answer: end quietly (uvicorn writes nothing for a gone client).
            scope[CLIENT_ERROR_SCOPE_KEY] = "client disconnected before the whole body arrived"
        except ClientDisconnect:
            scope[CLIENT_ERROR_SCOPE_KEY] = "client disconnected"

    @staticmethod
    async def _reject(send: Send, status: int, text: str, close: bool = False) -> None:
        """As a GraphQL error (what a GraphQL client can read), coded by the status."""
        code = REJECTION_CODES[status]
        body = json.dumps({"errors": [{"message": text, "extensions": {"code": code}}]}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:  # the rest of the announced body may never come: do not wait for it
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
