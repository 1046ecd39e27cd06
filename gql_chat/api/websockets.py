"""The app's open websockets: a cap per client IP, and a clean end when the server stops.

uvicorn's own shutdown cuts every websocket with 1012 before the app's lifespan shutdown runs,
so followers of a reply would lose its end. `gql-chat serve` therefore first lets replies
finish (the generation runner's shutdown), then calls `OpenWebsockets.going_away`: each
socket's operations that end by themselves (queries, mutations, `messageStream`) get a moment
to deliver their last events, the rest are cancelled, and the socket is closed with 1001
Going Away. Only then does uvicorn close what is left."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from graphql import DocumentNode, FieldNode, GraphQLError, OperationType
from graphql.utilities import get_operation_ast
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.extensions import SchemaExtension
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.base import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ErrorMessage as LegacyErrorMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    OperationMessage as LegacyOperationMessage,
)

from gql_chat.api.context import Context, OperationSignIn, operation_sign_in
from gql_chat.api.websocket_sign_ins import SIGNED_OUT, ConnectionSignIn, SignedInSockets
from gql_chat.services.tasks import end_tasks

if TYPE_CHECKING:
    from gql_chat.api.view import GraphQLView

logger = logging.getLogger(__name__)

INTERNAL_ERROR = 1011
"""RFC 6455: the server met a condition that kept it from answering (e.g. the database is
unreachable at sign-in); clients reconnect with back-off. Not 4403: the token may be fine."""
INVALID_MESSAGE = 4400
"""graphql-transport-ws's close code for a frame that is not one of its messages."""
GOING_AWAY = 1001
"""RFC 6455: the server is going down. Clients reconnect (to another instance) and resume a
reply with `afterSeq`."""
SETTLE_SECONDS = 2.0
"""How long, at shutdown, operations that end by themselves get to deliver their last events
once the replies have finished."""
SELF_ENDING_SUBSCRIPTIONS = frozenset({"messageStream"})
"""Subscriptions that end on their own (with `done`); any other (`userEvents`) never does."""


def ends_by_itself(document: DocumentNode, operation_name: str | None) -> bool:
    """A query or mutation, or a subscription to a reply: it ends once the reply has ended."""
    operation = get_operation_ast(document, operation_name)
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


@dataclass(slots=True)
class OperationKind:
    """Whether a websocket operation ends by itself; recorded once, when the operation is
    about to execute, from its already parsed document (never parsed again at shutdown: a
    socket's operations may carry long documents). Until then (or when it never executes:
    a parse or validation error) it counts as ending by itself."""

    ends_by_itself: bool = True


_operation_kind: ContextVar[OperationKind | None] = ContextVar("operation_kind", default=None)
"""Set in the task that runs a websocket operation; read by `RecordOperationKind`."""


class RecordOperationKind(SchemaExtension):
    """Records a websocket operation's kind (see `OperationKind`). Only the websockets' copy
    of the schema has it (`websocket_schema`), so HTTP requests do not pay for it."""

    def on_execute(self) -> Iterator[None]:
        kind = _operation_kind.get()
        document = self.execution_context.graphql_document
        if kind is not None and document is not None:
            kind.ends_by_itself = ends_by_itself(document, self.execution_context.operation_name)
        yield


def websocket_schema(schema: BaseSchema) -> BaseSchema:
    """The schema with `RecordOperationKind` as its last extension: a shallow copy sharing
    everything else (types, resolvers, the document cache)."""
    copied = copy.copy(schema)
    copied.extensions = [*getattr(schema, "extensions", ()), RecordOperationKind]  # type: ignore[attr-defined]
    return copied


def release_cancellation(task: asyncio.Future[Any]) -> None:
    """A cancelled task keeps its CancelledError, whose traceback keeps the frames of the
    operation's coroutines, which keep the operation, which keeps the task: a cycle of about
    170 objects per ended subscription (its socket closed, or the client completed it) that only
    a full garbage collection frees (1.3 million objects and a 1.5 s pause after 10,000 sockets
    had closed). Asking for the result hands the error over (asyncio forgets it) and it is
    dropped here, with its frames. A done callback of every operation task."""
    if task.cancelled():
        with suppress(asyncio.CancelledError):
            task.result()


def release_cancellation_when_done() -> None:
    """Register `release_cancellation` on the running task (an operation's)."""
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(release_cancellation)


OPTIONAL_PAYLOAD_FIELDS = (("operationName", str), ("variables", dict), ("extensions", dict))


def malformed(message: object, start: str = "subscribe", end: str = "complete") -> str | None:
    """Why a frame is not a well-formed message, or None. `start` and `end` are the names of
    the messages that start and end an operation: graphql-transport-ws's, or the legacy
    graphql-ws protocol's `start` and `stop`."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Invalid message: an object with a string `type` is expected"
    if message["type"] in {start, end} and not isinstance(message.get("id"), str):
        return "Invalid message: `id` must be a string"
    if message["type"] != start:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return f"Invalid {start} message: `payload.query` must be a string"
    for name, kind in OPTIONAL_PAYLOAD_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, kind):
            expected = "a string" if kind is str else "an object"
            return f"Invalid {start} message: `payload.{name}` must be {expected} or null"
    return None


class OpenWebsockets:
    """Counts open websockets per client IP, and knows their protocol handlers and sign-ins."""

    def __init__(self, per_ip: int) -> None:
        self.per_ip = per_ip
        self.sign_ins = SignedInSockets()
        self._counts: dict[str, int] = {}
        self._handlers: set[TransportWsHandler] = set()
        self._schema: tuple[BaseSchema, BaseSchema] | None = None

    @property
    def count(self) -> int:
        """Open websockets, from all addresses."""
        return sum(self._counts.values())

    def schema_for(self, schema: BaseSchema) -> BaseSchema:
        """The websockets' copy of the view's schema (see `websocket_schema`), made once."""
        if self._schema is None or self._schema[0] is not schema:
            self._schema = (schema, websocket_schema(schema))
        return self._schema[1]

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


class SignInWatch:
    """A protocol handler's part in `api/websocket_sign_ins.py`: once the connection is
    acknowledged its sign-in is watched, until the socket closes."""

    context: Context
    view: Any
    sign_out: Callable[[str], Coroutine[Any, Any, None]]
    """The sign-in has ended: cancel the operations, close with 4403."""
    _sign_in: ConnectionSignIn | None = None

    @property
    def open_websockets(self) -> OpenWebsockets:
        return cast("GraphQLView", self.view).websockets

    def watch_sign_in(self, acknowledged: bool) -> None:
        sign_in = self.context.connection_sign_in
        if acknowledged and sign_in is not None and self._sign_in is None:
            self._sign_in = ConnectionSignIn(self.context, sign_in, self.sign_out)
            self.open_websockets.sign_ins.add(self._sign_in)

    def forget_sign_in(self) -> None:
        """Dropped, not only stopped: the sign-in holds this handler's `sign_out`, a cycle
        otherwise left to the cyclic garbage collector with the whole closed socket."""
        if self._sign_in is not None:
            self.open_websockets.sign_ins.discard(self._sign_in)
            self._sign_in.stop()
            self._sign_in = None


class MessageFailures:
    """A protocol handler's answer to a message that fails for no fault of the client (the
    sign-in's database read failed, say): the socket closes with 1011, rather than the error
    escaping the ASGI app and dropping the connection; a transient failure is logged as one
    line naming its type, anything else with its traceback."""

    schema: BaseSchema
    _close: Callable[[int, str], Coroutine[Any, Any, None]]

    async def handled(self, handling: Awaitable[None]) -> None:
        try:
            await handling
        except (WebSocketDisconnected, WebSocketDisconnect, SendAfterClose):
            return  # the socket closed meanwhile (its sign-in ended, say): nothing to answer
        except Exception as error:
            transient = getattr(self.schema, "transient_errors", (TimeoutError,))
            if isinstance(error, transient):
                logger.warning("websocket message failed: %s", type(error).__name__)
            else:
                logger.error("websocket message failed", exc_info=error)
            await self._close(INTERNAL_ERROR, "Internal server error")


class TransportWsHandler(
    SignInWatch, MessageFailures, BaseGraphQLTransportWSHandler[Context, None]
):
    """Strawberry's graphql-transport-ws handler, known to `OpenWebsockets` while it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = self.open_websockets.schema_for(self.schema)
        self._kinds: dict[Operation[Context, None], OperationKind] = {}
        self._close_socket = self.websocket.close
        self.websocket.close = self._close_saying_why  # type: ignore[method-assign]

    async def _close_saying_why(self, code: int, reason: str) -> None:
        """Strawberry closes a refused `connection_init` with 4403 "Forbidden"; the reason says
        more when the connection knows it ("Token expired": refresh, then reconnect)."""
        if code == SIGNED_OUT and self.context.rejection_reason is not None:
            reason = self.context.rejection_reason
        await self._close_socket(code, reason)

    async def handle(self) -> None:
        self.open_websockets.add(self)
        try:
            await super().handle()
        finally:
            self.open_websockets.discard(self)
            self.forget_sign_in()
            del self.websocket.close  # the adapter's own again: no cycle through this handler

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        self.release_init_deadline()
        self.watch_sign_in(self.connection_acknowledged)

    def release_init_deadline(self) -> None:
        """Once `connection_init` has come, its deadline's task is over (Strawberry cancels
        it) but Strawberry kept it for the socket's life, with its CancelledError, traceback
        and frames: about 1 KiB per idle socket. A cancelled task the loop has yet to finish
        is held by the loop until it does."""
        if self.connection_init_received:
            self.connection_init_timeout_task = None

    async def handle_message(self, message: Message) -> None:
        """A frame that is not a well-formed message closes the socket with 4400, as the
        protocol says. (Strawberry checks only that the fields exist: a frame that is not an
        object, or a field of the wrong type, raised in the ASGI application or in the
        operation's task, with a traceback in the log, and dropped the socket.)"""
        problem = malformed(cast("object", message))
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await self.handled(super().handle_message(message))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Strawberry's, with the error past `max_ws_operations` carrying a code (it had none,
        and spoke of subscriptions though queries and mutations count too)."""
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"At most {limit} operations can run at once on one websocket.",
                extensions={"code": "RATE_LIMITED", "limit": limit},
            )
            await self.send_message(
                ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            )
            return
        await super().handle_subscribe(message)

    def forget_id(self, id: str) -> None:
        """An operation cancelled by `_cancel_operations` (its socket's sign-in ended) was
        already removed; Strawberry's `del` then raised KeyError in the operation's task."""
        self.operations.pop(id, None)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        release_cancellation_when_done()
        kind = self._kinds[operation] = OperationKind()
        _operation_kind.set(kind)  # this task's context: the operation's alone
        operation_sign_in.set(OperationSignIn())
        try:
            await super().run_operation(operation)
        finally:
            del self._kinds[operation]

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: Any
    ) -> None:
        """A document our `on_parse` check refuses (it does not parse, is too large, or holds
        several unnamed operations) raises out of Strawberry's stream, which answered with
        `complete` alone: it gets the protocol's `error` message, with its code, like any
        other error before execution (and the socket's other operations go on)."""
        try:
            await super()._send_result_stream(operation, result_source)
        except GraphQLError as error:
            await operation.send_initial_errors([error])

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
            and self._kinds.get(operation, OperationKind()).ends_by_itself
        ]
        if finishing:
            await asyncio.wait(finishing, timeout=settle)
        await self._cancel_operations()
        await self._close(GOING_AWAY, "Server shutting down")

    async def sign_out(self, reason: str) -> None:
        await self._cancel_operations()
        await self._close(SIGNED_OUT, reason)

    async def shutdown(self) -> None:
        """Strawberry's, but an operation that outlives one cancellation is cancelled again
        (`end_tasks`): Strawberry awaited it for ever, and the socket never closed."""
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
            with suppress(asyncio.CancelledError):
                await self.connection_init_timeout_task
        await self._cancel_operations()

    async def _cancel_operations(self) -> None:
        running = [operation.task for operation in self.operations.values() if operation.task]
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await end_tasks(running, "websocket operations")  # their `finally` blocks run first

    async def _close(self, code: int, reason: str) -> None:
        websocket = self.context.request
        if not isinstance(websocket, WebSocket):
            return
        if websocket.application_state is not WebSocketState.CONNECTED:
            return
        with suppress(WebSocketDisconnect, SendAfterClose, OSError):
            await self.websocket.close(code=code, reason=reason)


class LegacyWsHandler(SignInWatch, MessageFailures, BaseGraphQLWSHandler[Context, None]):
    """Strawberry's handler of the legacy `graphql-ws` protocol (off unless
    `GQL_CHAT_ENABLE_LEGACY_GRAPHQL_WS`), with the same watch over its sign-in."""

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            self.forget_sign_in()

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        self.watch_sign_in(self.connection_acknowledged)

    async def handle_message(self, message: LegacyOperationMessage) -> None:
        """As `TransportWsHandler.handle_message`: a frame that is not one of the protocol's
        messages closes the socket with 4400 (the legacy protocol names no answer; Strawberry
        raised on it in the ASGI application, with a traceback in the log, and dropped the
        socket), and a message that fails for no fault of the client closes it with 1011."""
        problem = malformed(cast("object", message), start="start", end="stop")
        if problem is not None:
            await self._close(INVALID_MESSAGE, problem)
            return
        await self.handled(super().handle_message(message))

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """As `TransportWsHandler._send_result_stream`: a document refused before it is parsed
        gets this protocol's `error` message (it got nothing at all)."""
        release_cancellation_when_done()
        try:
            await super().handle_async_results(operation_id, query, operation_name, variables)
        except GraphQLError as error:
            await self.send_message(
                LegacyErrorMessage(type="error", id=operation_id, payload=error.formatted)
            )

    async def sign_out(self, reason: str) -> None:
        await self.cleanup()
        await self._close(SIGNED_OUT, reason)

    async def _close(self, code: int, reason: str) -> None:
        with suppress(WebSocketDisconnect, SendAfterClose, WebSocketDisconnected, OSError):
            await self.websocket.close(code=code, reason=reason)
