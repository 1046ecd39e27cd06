"""The Strawberry ASGI view: builds the context and authenticates websocket connections."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from gql_chat.api.context import Context
from gql_chat.config import Settings
from gql_chat.errors import DomainError
from gql_chat.services.container import Services


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: Any, settings: Settings) -> None:
        protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL]
        if settings.enable_legacy_graphql_ws:
            protocols.append(GRAPHQL_WS_PROTOCOL)
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=protocols,
            allowed_origins=settings.cors_origins,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services: Services = request.app.state.services
        return Context(services=services, request=request, response=response)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A bad or stale token refuses the connection (graphql-transport-ws closes with 4403)."""
        try:
            await context.authenticate_connection()
        except DomainError as exc:
            raise ConnectionRejectionError() from exc
        return await super().on_ws_connect(context)
