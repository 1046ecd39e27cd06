"""The Strawberry ASGI view: context, websocket authentication, and GraphQL-over-HTTP rules
(content negotiation with `application/graphql-response+json`, 406, CSRF prevention, 415 for a
body that is neither JSON nor multipart). A JSON POST, nearly every request, is answered straight
from the ASGI scope (`answer_json_post`); every other request takes Strawberry's `run`."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.types import HTTPMethod
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from gql_chat.api.client_ip import client_ip
from gql_chat.api.context import Context, ResponseTooLarge, response_budget
from gql_chat.api.graphiql import render_graphiql
from gql_chat.api.http_rules import (
    CSRF_MESSAGE,
    GRAPHQL_RESPONSE_JSON,
    JSON,
    UNSUPPORTED_MEDIA_TYPE_MESSAGE,
    accepts_html,
    is_csrf_suspect,
    is_json_content_type,
    is_supported_post,
    negotiate,
)
from gql_chat.api.websocket_sign_ins import TOKEN_EXPIRED
from gql_chat.api.websockets import LegacyWsHandler, OpenWebsockets, TransportWsHandler
from gql_chat.config import Settings
from gql_chat.errors import DomainError
from gql_chat.services.registry import Services
from gql_chat.services.tokens import TOKEN_EXPIRED as TOKEN_EXPIRED_REASON

TOO_MANY_WEBSOCKETS = "Too many open websockets from this address."
MULTIPART_MAP_MESSAGE = (
    "The multipart `map` must be a JSON object from each file field's name to a list of paths, "
    'each leading to a variable of the operation (e.g. {"0": ["variables.file"]}).'
)
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions are served over a websocket: connect to /graphql with the "
    "graphql-transport-ws protocol."
)


def is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and variable errors: nothing executed, so no error has a path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def graphql_response(result: ExecutionResult, media: str | None) -> tuple[int, GraphQLHTTPResponse]:
    """The status and body for an operation's result. Over the response budget: only that
    error, none of the text built so far. A request error (nothing executed) under
    `application/graphql-response+json` is a 400 without a `data` entry, as the spec says."""
    request_error = is_request_error(result)
    budget = response_budget.get()
    if budget is not None and budget.exceeded and not request_error:
        error = ResponseTooLarge(budget.limit)
        result = ExecutionResult(
            data=None,
            errors=[GraphQLError(error.message, extensions=error.extensions)],
            extensions=result.extensions,
        )
    processed = process_result(result)
    if request_error and media == GRAPHQL_RESPONSE_JSON:
        processed.pop("data", None)
        return 400, processed
    return 200, processed


def first_headers(scope: Scope, names: tuple[bytes, ...]) -> dict[bytes, str]:
    """The first value of each of `names` (lower-case, as ASGI gives them), in one pass over
    the request's headers: what Starlette's `Headers.get` answers, without a scan per name."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found


@cache  # one entry per HTTP method
def allowed_over_http(method: HTTPMethod) -> frozenset[OperationType]:
    """Strawberry's operation types for an HTTP method, without subscriptions (see
    `execute_request`)."""
    return frozenset(OperationType.from_http(method) - {OperationType.SUBSCRIPTION})


async def read_body(receive: Receive) -> bytes:
    """The request's whole body, as Starlette's `Request.body` reads it (a client that leaves
    first is `ClientDisconnect`), without its stream generator."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # the only other message ASGI sends here
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _not_a(entry: str, expected: str) -> str:
    return f"The GraphQL operation's `{entry}` must be {expected} or null, if provided."


def graphql_request_data(data: object) -> GraphQLRequestData:
    """A JSON body as one GraphQL request: Strawberry's checks and messages, plus one for
    `operationName`."""
    if isinstance(data, list):
        raise HTTPException(400, "Batching is not enabled")
    if not isinstance(data, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    query, variables = data.get("query"), data.get("variables")
    operation_name, extensions = data.get("operationName"), data.get("extensions")
    if not isinstance(query, str | None):
        raise HTTPException(400, _not_a("query", "a string"))
    if not isinstance(operation_name, str | None):
        raise HTTPException(400, _not_a("operationName", "a string"))
    if not isinstance(variables, dict | None):
        raise HTTPException(400, _not_a("variables", "an object"))
    if not isinstance(extensions, dict | None):
        raise HTTPException(400, _not_a("extensions", "an object"))
    return GraphQLRequestData(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWsHandler
    graphql_ws_handler_class = LegacyWsHandler

    def __init__(self, schema: Any, settings: Settings) -> None:
        protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL]
        if settings.enable_legacy_graphql_ws:
            protocols.append(GRAPHQL_WS_PROTOCOL)
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=protocols,
            allowed_origins=settings.cors_origins,
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
            max_subscriptions_per_connection=settings.max_ws_operations,
            multipart_uploads_enabled=True,
        )
        self._graphiql_assets_url = settings.graphiql_assets_url
        self._trusted_proxies = settings.trusted_proxies
        self.websockets = OpenWebsockets(settings.max_websockets_per_ip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A JSON POST is answered here; everything else takes Strawberry's path."""
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = first_headers(scope, JSON_POST_HEADERS)
            if is_json_content_type(headers.get(b"content-type")):
                await self.answer_json_post(scope, receive, send, headers.get(b"accept"))
                return
        await super().__call__(scope, receive, send)

    async def answer_json_post(
        self, scope: Scope, receive: Receive, send: Send, accept: str | None
    ) -> None:
        """A JSON POST without the generality of Strawberry's `run` (WebSocket, IDE and CSRF
        checks, which a JSON POST passes; GET and multipart parsing, batching, streaming
        transports, a sub-response no resolver uses): the same answers, the body encoded once
        and sent without a `Response`. In-process a `me` request went from 163 to 134 us."""
        media = negotiate(accept)
        if media is None:
            await not_acceptable()(scope, receive, send)
            return
        request = Request(scope, receive)
        response_budget.set(None)  # set again when the operation starts
        try:
            context = await self.get_context(request, None)
            request_data = graphql_request_data(self.parse_json(await read_body(receive)))
            result = await self.execute_request(request_data, context, "POST")
        except HTTPException as exc:  # a body that is not one GraphQL request
            await request_error_response(exc, media)(scope, receive, send)
            return
        status, data = graphql_response(result, media)
        body = orjson.dumps(data)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", response_content_type(media).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = None, root_value: Any = None
    ) -> Response | WebSocket:
        """Context and root value always come from `get_context`; the arguments are unused."""
        if isinstance(request, WebSocket):
            return await self.run_websocket(request)
        media = negotiate(request.headers.get("accept"))
        if media is None and not (request.method == "GET" and accepts_html(request)):
            return not_acceptable()
        if is_csrf_suspect(request):
            return request_error_response(HTTPException(400, CSRF_MESSAGE), media or JSON)
        if request.method == "POST" and not is_supported_post(request.headers.get("content-type")):
            return PlainTextResponse(UNSUPPORTED_MEDIA_TYPE_MESSAGE, status_code=415)
        request.state.media_type = media
        response_budget.set(None)  # set again when the operation starts
        try:
            response = await super().run(request)
        except HTTPException as exc:  # a body or request that is not GraphQL over HTTP
            return request_error_response(exc, media or JSON)
        if media == GRAPHQL_RESPONSE_JSON and response.media_type != "text/html":
            response.headers["content-type"] = GRAPHQL_RESPONSE_CONTENT_TYPE
            if getattr(request.state, "request_error", False):
                response.status_code = 400
        return response

    async def run_websocket(self, websocket: WebSocket) -> WebSocket:
        """At most `max_websockets_per_ip` open websockets per client IP: beyond that the
        handshake is refused with HTTP 429. A socket stops counting when its handler returns,
        however the socket ended."""
        ip = client_ip(websocket, self._trusted_proxies)
        if not self.websockets.admit(ip):
            return await refuse_handshake(websocket, 429, TOO_MANY_WEBSOCKETS)
        try:
            return await super().run(websocket)
        finally:
            self.websockets.release(ip)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        return await self.execute_request(request_data, context, request_adapter.method)

    async def execute_request(
        self, request_data: GraphQLRequestData, context: Context, method: HTTPMethod
    ) -> ExecutionResult:
        """Strawberry's `execute_single`, without subscriptions: it would run one over HTTP as a
        query and fail with "Cannot return null for non-nullable field". A subscription is a
        request error (`BAD_REQUEST`) saying where subscriptions are served. A mutation over
        GET is 405 Method Not Allowed (GraphQL over HTTP), not 400."""
        allowed = allowed_over_http(method)
        try:
            return await self.schema.execute(
                request_data.query,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                return ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(SUBSCRIPTION_OVER_HTTP, extensions={"code": "BAD_REQUEST"})
                    ],
                )
            raise HTTPException(405, exc.as_http_error_reason(method)) from exc
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, str]:
        """Strawberry's, with the spec's shapes checked first: a malformed `operations` or
        `map` (a list, null, a path through a scalar) raised in Strawberry's placeholder code,
        a 500. Batching is not enabled, so `operations` is one object."""
        try:
            form = await request.get_form_data()
        except (ValueError, StarletteHTTPException) as exc:  # no boundary: Starlette's 400
            raise HTTPException(400, "Unable to parse the multipart body") from exc
        operations = self.parse_json(form.form.get("operations", "{}"))
        files_map = self.parse_json(form.form.get("map", "{}"))
        if not isinstance(operations, dict):
            raise HTTPException(400, "The multipart `operations` field must be a JSON object.")
        if not isinstance(files_map, dict) or not all(
            isinstance(paths, list) and all(isinstance(p, str) for p in paths)
            for paths in files_map.values()
        ):
            raise HTTPException(400, MULTIPART_MAP_MESSAGE)
        if any(name not in form.files for name in files_map):
            raise HTTPException(400, "File(s) missing in form data")
        try:
            return replace_placeholders_with_files(operations, files_map, form.files)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError):
            raise HTTPException(400, MULTIPART_MAP_MESSAGE) from None

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        status, processed = graphql_response(result, getattr(request.state, "media_type", None))
        request.state.request_error = status == 400
        return processed

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return render_graphiql(request, self._graphiql_assets_url)

    def decode_json(self, data: str | bytes) -> object:
        """orjson for speed; its JSONDecodeError subclasses the stdlib's, which Strawberry maps
        to a 400."""
        return orjson.loads(data)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        """Strawberry's, with the body encoded once: orjson's bytes go out as they are (its
        `encode_json` gives text, which Starlette encodes again: two extra copies of a
        response that may be tens of MB)."""
        return Response(orjson.dumps(response_data), media_type="application/json")

    def encode_json(self, data: object) -> str:
        """orjson for speed; text, because graphql-transport-ws frames must be text frames."""
        return orjson.dumps(data).decode()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> Context:
        """No resolver sets a status or header on Strawberry's sub-response, so the context has
        none: the JSON POST path makes none."""
        services: Services = request.app.state.services
        return Context(services=services, request=request)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A missing, bad or stale token refuses the connection (graphql-transport-ws closes
        with 4403): every subscription needs a user, so an anonymous socket could only sit
        there holding memory."""
        try:
            sign_in = await context.authenticate_connection()
        except DomainError as exc:
            if exc.extra.get("reason") == TOKEN_EXPIRED_REASON:
                context.rejection_reason = TOKEN_EXPIRED
            raise ConnectionRejectionError() from exc
        if sign_in is None:
            raise ConnectionRejectionError()
        return await super().on_ws_connect(context)


HTTP_ERROR_CODES = {400: "BAD_REQUEST", 405: "METHOD_NOT_ALLOWED"}
JSON_POST_HEADERS = (b"content-type", b"accept")
GRAPHQL_RESPONSE_CONTENT_TYPE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"


def response_content_type(media: str) -> str:
    """The `Content-Type` of a GraphQL response in the negotiated media type."""
    return GRAPHQL_RESPONSE_CONTENT_TYPE if media == GRAPHQL_RESPONSE_JSON else media


def not_acceptable() -> Response:
    """A new one each time: middleware may add to a response's header list as it is sent."""
    return PlainTextResponse(
        "Not Acceptable: use application/graphql-response+json or application/json.",
        status_code=406,
    )


def request_error_response(exc: HTTPException, media: str) -> Response:
    """Strawberry's refusals (a body that is not JSON, no query, a mutation over GET, …) as a
    GraphQL response with a code, as every other error is, rather than as plain text."""
    error = {
        "message": exc.reason,
        "extensions": {"code": HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST")},
    }
    return Response(
        orjson.dumps({"errors": [error]}),
        status_code=exc.status_code,
        media_type=response_content_type(media),
    )


async def refuse_handshake(websocket: WebSocket, status: int, message: str) -> WebSocket:
    """Answer the upgrade request with an HTTP error (ASGI's websocket denial response; a
    server without it answers 403)."""
    if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(PlainTextResponse(message, status_code=status))
    else:
        await websocket.close(code=1008)
    return websocket
