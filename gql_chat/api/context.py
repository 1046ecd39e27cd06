"""One typed context for HTTP requests and websocket connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from gql_chat.api.client_ip import client_ip
from gql_chat.api.loaders import Loaders
from gql_chat.errors import Unauthenticated
from gql_chat.services.container import Services
from gql_chat.store.users import UserRecord

BEARER_PREFIX = "bearer "


def bearer_token(value: object) -> str | None:
    """The token of an `Authorization: Bearer …` value; a malformed value is an invalid token."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.lower().startswith(BEARER_PREFIX.strip()):
        raise Unauthenticated("Invalid or expired token.")
    token = value[len(BEARER_PREFIX) - 1 :].strip()
    return token or None  # "Bearer " with nothing after it: the explorer's empty template


@dataclass
class Principal:
    user: UserRecord
    family_id: str | None


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    # Strawberry fills this from `connection_init` (it skips a dataclass without the field).
    connection_params: dict[str, Any] | None = None
    _principal: Principal | None = field(default=None, repr=False)
    _resolved: bool = field(default=False, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def is_websocket(self) -> bool:
        return isinstance(self.request, WebSocket)

    @property
    def client_ip(self) -> str:
        return client_ip(self.request, self.services.settings.trusted_proxies)

    async def authenticate_connection(self) -> None:
        """Websocket: check the `connection_init` token once, at connect; raises when bad."""
        params = self.connection_params or {}
        token = bearer_token(params.get("Authorization", params.get("authorization")))
        self._principal = await self._authenticate(token)
        self._resolved = True

    async def principal(self) -> Principal | None:
        """HTTP: the `Authorization` header's user, looked up (and re-checked) once per request."""
        if not self._resolved:
            token = bearer_token(self.request.headers.get("authorization"))
            self._principal = await self._authenticate(token)
            self._resolved = True
        return self._principal

    async def require_principal(self) -> Principal:
        principal = await self.principal()
        if principal is None:
            raise Unauthenticated()
        return principal

    async def require_user(self) -> UserRecord:
        return (await self.require_principal()).user

    async def owner_id(self) -> ObjectId:
        return (await self.require_user()).id

    async def loaders(self) -> Loaders:
        """Per HTTP request; per call over a websocket, whose context lives as long as the
        connection (a connection-wide cache would serve stale rows)."""
        if self._loaders is not None:
            return self._loaders
        loaders = Loaders(self.services, await self.owner_id())
        if not self.is_websocket:
            self._loaders = loaders
        return loaders

    async def _authenticate(self, token: str | None) -> Principal | None:
        if token is None:
            return None
        user, family_id = await self.services.accounts.authenticate(token)
        return Principal(user=user, family_id=family_id)
