"""One typed context for HTTP requests and websocket connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

import strawberry
from bson import ObjectId
from starlette.requests import Request
from starlette.websockets import WebSocket

from gql_chat.api.client_ip import client_ip
from gql_chat.api.loaders import Loaders
from gql_chat.domain.logins import Device
from gql_chat.domain.users import UserRecord
from gql_chat.errors import DomainError, Unauthenticated
from gql_chat.services.accounts import SignIn
from gql_chat.services.registry import Services

BEARER_PREFIX = "bearer "


def bearer_token(value: object) -> str | None:
    """The token of an `Authorization: Bearer …` value; a malformed value is an invalid token."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.lower().startswith(BEARER_PREFIX.strip()):
        raise Unauthenticated("Invalid or expired token.", reason="TOKEN_INVALID")
    token = value[len(BEARER_PREFIX) - 1 :].strip()
    return token or None  # "Bearer " with nothing after it: the explorer's empty template


class ResponseTooLarge(DomainError):
    """The response would carry more text than `GQL_CHAT_MAX_RESPONSE_BYTES` allows."""

    code: ClassVar[str] = "RESPONSE_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The response would carry more than {limit} characters of text. Ask for fewer "
            "messages, fields or aliases at once, and page through the rest.",
            limit=limit,
        )


class ResponseBudget:
    """How much text one operation's response (or one subscription event) may carry.

    The large text fields (message content, exports) are charged as they are resolved; once
    the total is over the limit every further charge fails too, so nothing more is built, and
    the HTTP view answers the request with only the `RESPONSE_TOO_LARGE` error."""

    __slots__ = ("_lock", "exceeded", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.exceeded = False
        self._lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        """Held while one large text (an export) is read and built: aliases of it then run
        one at a time, so once the budget is spent the rest fail before reading anything."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def charge(self, size: int) -> None:
        self.used += size
        if self.exceeded or self.used > self.limit:
            self.exceeded = True
            raise ResponseTooLarge(self.limit)

    def check(self) -> None:
        """Fail at once if the budget is already spent (before expensive work)."""
        if self.exceeded:
            raise ResponseTooLarge(self.limit)

    def reset(self) -> None:
        """A new subscription event: a budget of its own."""
        self.used = 0
        self.exceeded = False


# Set when an operation starts (its document is parsed: see `api/documents.py`), in the task
# that runs it; its resolvers' tasks inherit it. Per HTTP request, per websocket operation.
response_budget: ContextVar[ResponseBudget | None] = ContextVar("response_budget", default=None)


def start_response_budget(limit: int) -> ResponseBudget:
    budget = ResponseBudget(limit)
    response_budget.set(budget)
    return budget


class OperationSignIn:
    """A websocket operation's check of its connection's sign-in: made when a resolver first
    asks, and shared by the operation's other resolvers (one user read per operation, as an
    HTTP request makes)."""

    __slots__ = ("checked", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.checked: SignIn | None = None


# Set by the websocket handler in the task that runs an operation (its resolvers inherit it).
# Unset (a direct call, the legacy protocol): every call re-checks.
operation_sign_in: ContextVar[OperationSignIn | None] = ContextVar(
    "operation_sign_in", default=None
)


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    # Strawberry fills this from `connection_init` (it skips a dataclass without the field).
    connection_params: dict[str, Any] | None = None
    # Over a websocket: what to do once its sign-in is found to have ended (close it).
    on_sign_in_ended: Callable[[], None] | None = field(default=None, repr=False)
    # Over a websocket refused at `connection_init`: the 4403 close's reason, when it is more
    # than "Forbidden" (an expired token, which the client refreshes).
    rejection_reason: str | None = field(default=None, repr=False)
    _principal: SignIn | None = field(default=None, repr=False)
    _resolved: bool = field(default=False, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def is_websocket(self) -> bool:
        return isinstance(self.request, WebSocket)

    @property
    def client_ip(self) -> str:
        return client_ip(self.request, self.services.settings.trusted_proxies)

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")

    @property
    def device(self) -> Device:
        """Where a sign-in made by this request comes from."""
        return Device.of(self.client_ip, self.user_agent)

    def charge_text(self, text: str | int) -> None:
        """Count a large text field (or a size) against the operation's response budget;
        raises `ResponseTooLarge` once over it."""
        budget = response_budget.get()
        if budget is None:  # outside an operation (a service called directly)
            budget = start_response_budget(self.services.settings.max_response_bytes)
        budget.charge(text if isinstance(text, int) else len(text))

    @asynccontextmanager
    async def large_text(self) -> AsyncIterator[None]:
        """Around reading and building one large text (an export): one at a time per
        operation, and not at all once the budget is spent."""
        budget = response_budget.get()
        if budget is None:
            budget = start_response_budget(self.services.settings.max_response_bytes)
        async with budget.lock:
            budget.check()
            yield

    async def authenticate_connection(self) -> SignIn | None:
        """Websocket: check the `connection_init` token at connect; raises when bad."""
        params = self.connection_params or {}
        token = bearer_token(params.get("Authorization", params.get("authorization")))
        self._principal = await self._authenticate(token)
        self._resolved = True
        return self._principal

    @property
    def connection_sign_in(self) -> SignIn | None:
        """Websocket: the sign-in as last checked."""
        return self._principal

    async def principal(self) -> SignIn | None:
        """HTTP: the `Authorization` header's user, looked up (and re-checked) once per request.
        Websocket: the connection's sign-in, re-checked once per operation (an open socket
        must not outlive its token, its user, a disabled account or its revoked login)."""
        if self.is_websocket:
            return await self._operation_sign_in()
        if not self._resolved:
            token = bearer_token(self.request.headers.get("authorization"))
            self._principal = await self._authenticate(token)
            self._resolved = True
        return self._principal

    async def recheck_connection(self) -> SignIn:
        """Websocket: check the connection's sign-in again (see `AccountService.recheck`);
        when it has ended, `on_sign_in_ended` runs and `Unauthenticated` is raised."""
        if self._principal is None:
            raise Unauthenticated()
        try:
            self._principal = await self.services.accounts.recheck(self._principal)
        except Unauthenticated:
            if self.on_sign_in_ended is not None:
                self.on_sign_in_ended()
            raise
        return self._principal

    async def _operation_sign_in(self) -> SignIn | None:
        if self._principal is None:
            return None
        scope = operation_sign_in.get()
        if scope is None:
            return await self.recheck_connection()
        async with scope.lock:
            if scope.checked is None:
                scope.checked = await self.recheck_connection()
            return scope.checked

    async def require_principal(self) -> SignIn:
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

    async def _authenticate(self, token: str | None) -> SignIn | None:
        if token is None:
            return None
        return await self.services.accounts.authenticate(token)


Info = strawberry.Info[Context, None]
"""What every resolver receives: typed, so mypy checks `info.context` and the service calls."""
