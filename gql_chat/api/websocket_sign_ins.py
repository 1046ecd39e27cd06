"""Keeping a websocket's sign-in honest for as long as the socket stays open.

A socket signs in once, at `connection_init`, and may stay open for hours. From then on:

- every operation re-checks the sign-in (`Context.principal`): the token has not expired, the
  user is neither disabled nor deleted;
- when the token expires, the socket is closed with 4403;
- when the user is disabled or deleted, or sign-ins of theirs are revoked (logout, logoutAll,
  a password change; on this instance or another, `services/sign_ins.py`), the user's sockets
  re-check at once, their own sign-in's revocation included.

An ended sign-in cancels the socket's operations and closes it with 4403 Forbidden, which
graphql-ws clients retry: they reconnect with fresh `connectionParams` (a new token) and
subscribe again; a reply resumes from `afterSeq`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bson import ObjectId

from gql_chat.api.context import Context
from gql_chat.domain.clock import utc_now
from gql_chat.errors import Unauthenticated
from gql_chat.services.accounts import SignIn

logger = logging.getLogger(__name__)

SIGNED_OUT = 4403
"""The close code of a socket whose sign-in ended: graphql-transport-ws's Forbidden."""
TOKEN_EXPIRED = "Token expired"
SIGN_IN_ENDED = "Signed out"


class ConnectionSignIn:
    """One open socket's sign-in: ends the socket (`end(reason)`) when it expires, or when a
    re-check finds it ended."""

    def __init__(
        self, context: Context, sign_in: SignIn, end: Callable[[str], Coroutine[Any, Any, None]]
    ) -> None:
        self.user_id: ObjectId = sign_in.user.id
        self._context = context
        self._end = end
        self._ending: asyncio.Task[None] | None = None
        self._rechecking: asyncio.Task[None] | None = None
        self._recheck_again = False
        seconds = max(0.0, (sign_in.expires_at - utc_now()).total_seconds())
        self._expiry = asyncio.get_running_loop().call_later(seconds, self.end_soon, TOKEN_EXPIRED)
        context.on_sign_in_ended = self._ended

    def end_soon(self, reason: str) -> None:
        """Close the socket (once; from a task of its own, never the caller's)."""
        if self._ending is None:
            self._ending = asyncio.create_task(self._end(reason))

    def recheck_soon(self) -> None:
        """Some of the user's sign-ins ended: check this one. News arriving while a check
        runs makes one more check after it, however much arrives: a storm of sign-outs costs
        each socket two checks, not one task per announcement."""
        if self._ending is not None:
            return
        if self._rechecking is not None and not self._rechecking.done():
            self._recheck_again = True
            return
        self._rechecking = asyncio.create_task(self._recheck_until_settled())

    def stop(self) -> None:
        """The socket has closed (the closing task itself, if any, runs to its end)."""
        self._expiry.cancel()
        if self._rechecking is not None:
            self._rechecking.cancel()
        self._context.on_sign_in_ended = None

    def _ended(self) -> None:
        self.end_soon(SIGN_IN_ENDED)

    async def _recheck_until_settled(self) -> None:
        while True:
            self._recheck_again = False
            await self._recheck()
            if not self._recheck_again or self._ending is not None:
                return

    async def _recheck(self) -> None:
        try:
            await self._context.recheck_connection()
        except Unauthenticated:
            pass  # `_ended` has run
        except Exception as error:
            # The store did not answer: the next operation, or the token's expiry, checks again.
            logger.warning("could not re-check a websocket's sign-in: %s", type(error).__name__)


class SignedInSockets:
    """The open sockets' sign-ins by user: whom to re-check when a user's sign-ins end."""

    def __init__(self) -> None:
        self._by_user: dict[ObjectId, set[ConnectionSignIn]] = {}

    def add(self, connection: ConnectionSignIn) -> None:
        self._by_user.setdefault(connection.user_id, set()).add(connection)

    def discard(self, connection: ConnectionSignIn) -> None:
        connections = self._by_user.get(connection.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._by_user[connection.user_id]

    def sign_ins_ended(self, user_id: ObjectId) -> None:
        """A `services.sign_ins` listener."""
        for connection in list(self._by_user.get(user_id, ())):
            connection.recheck_soon()
