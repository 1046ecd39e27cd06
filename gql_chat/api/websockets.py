"""The app's open websockets: a cap per client IP, and a clean end when the server stops.

uvicorn's own shutdown cuts every websocket with 1012 before the app's lifespan shutdown runs,
so followers of a reply would lose its end. `gql-chat serve` therefore first lets replies
finish (the generation runner's shutdown), then calls `OpenWebsockets.going_away`: each
socket's operations that end by themselves (queries, mutations, `messageStream`) get a moment
to deliver their last events, the rest are cancelled, and the socket is closed with 1001
Going Away. Only then does uvicorn close what is left."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from graphql import FieldNode, GraphQLError, OperationType, parse
from graphql.utilities import get_operation_ast
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from gql_chat.api.context import Context

if TYPE_CHECKING:
    from gql_chat.api.view import GraphQLView

GOING_AWAY = 1001
"""RFC 6455: the server is going down. Clients reconnect (to another instance) and resume a
reply with `afterSeq`."""
SETTLE_SECONDS = 2.0
"""How long, at shutdown, operations that end by themselves get to deliver their last events
once the replies have finished."""
SELF_ENDING_SUBSCRIPTIONS = frozenset({"messageStream"})
"""Subscriptions that end on their own (with `done`); any other (`userEvents`) never does."""


@lru_cache(maxsize=32)  # at shutdown, most sockets run the same few documents
def ends_by_itself(query: str, operation_name: str | None) -> bool:
    """A query or mutation, or a subscription to a reply: it ends once the reply has ended."""
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return True  # refused before it ran
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return True
    fields = {
        selection.name.value
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode)
    }
    return len(fields) == len(operation.selection_set.selections) and fields <= (
        SELF_ENDING_SUBSCRIPTIONS
    )


class OpenWebsockets:
    """Counts open websockets per client IP, and knows their protocol handlers."""

    def __init__(self, per_ip: int) -> None:
        self.per_ip = per_ip
        self._counts: dict[str, int] = {}
        self._handlers: set[TransportWsHandler] = set()

    def admit(self, ip: str) -> bool:
        """Count a new websocket from `ip`, unless it already has `per_ip` open."""
        count = self._counts.get(ip, 0)
        if count >= self.per_ip:
            return False
        self._counts[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._counts[ip] - 1
        if count:
            self._counts[ip] = count
        else:
            del self._counts[ip]

    def add(self, handler: TransportWsHandler) -> None:
        self._handlers.add(handler)

    def discard(self, handler: TransportWsHandler) -> None:
        self._handlers.discard(handler)

    async def going_away(self, settle: float = SETTLE_SECONDS) -> None:
        """Close every socket with 1001 once its self-ending operations are done (within
        `settle` seconds)."""
        handlers = list(self._handlers)
        if handlers:
            await asyncio.gather(*(handler.going_away(settle) for handler in handlers))


class TransportWsHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, known to `OpenWebsockets` while it runs."""

    @property
    def open_websockets(self) -> OpenWebsockets:
        return cast("GraphQLView", self.view).websockets

    async def handle(self) -> None:
        self.open_websockets.add(self)
        try:
            await super().handle()
        finally:
            self.open_websockets.discard(self)

    async def handle_task_exception(self, error: Exception) -> None:
        """A send to a socket that has closed ends the operation with the connection; it is
        not an error. (Strawberry logged it as "Exception in worker task" with a traceback.)"""
        if isinstance(error, WebSocketDisconnected | SendAfterClose):
            return
        await super().handle_task_exception(error)

    async def going_away(self, settle: float) -> None:
        finishing = [
            operation.task
            for operation in list(self.operations.values())
            if operation.task is not None
            and ends_by_itself(operation.query, operation.operation_name)
        ]
        if finishing:
            await asyncio.wait(finishing, timeout=settle)
        running = [operation.task for operation in self.operations.values() if operation.task]
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        if running:
            await asyncio.wait(running)  # their `finally` blocks run before the close
        await self._close(GOING_AWAY, "Server shutting down")

    async def _close(self, code: int, reason: str) -> None:
        websocket = self.context.request
        if not isinstance(websocket, WebSocket):
            return
        if websocket.application_state is not WebSocketState.CONNECTED:
            return
        with suppress(WebSocketDisconnect, SendAfterClose, OSError):
            await self.websocket.close(code=code, reason=reason)
