"""Telling long-lived connections that some of a user's sign-ins have ended.

An HTTP request re-checks its token and user every time; a websocket signs in once, at
connect, and may stay open for hours. So when a user is disabled or deleted, or sign-ins of
theirs are revoked (logout, logoutAll, a password change, a reused refresh token), every
listener (the API's open websockets) hears the user's id and re-checks that user's
connections at once. With several instances the news also goes to the others
(`services/cluster.py`), which tell their own listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bson import ObjectId

logger = logging.getLogger(__name__)

SignInListener = Callable[[ObjectId], None]
"""Called with the user's id; must not block (it schedules its re-checks)."""


class SignInChanges:
    def __init__(self, relay: SignInListener | None = None) -> None:
        self._relay = relay
        self._listeners: list[SignInListener] = []

    def listen(self, listener: SignInListener) -> None:
        self._listeners.append(listener)

    def ended(self, user_id: ObjectId) -> None:
        """Some of the user's sign-ins ended here: tell this instance and the others."""
        self.heard(user_id)
        if self._relay is not None:
            self._relay(user_id)

    def heard(self, user_id: ObjectId) -> None:
        """Some of the user's sign-ins ended (here or on another instance)."""
        for listener in self._listeners:
            try:
                listener(user_id)
            except Exception:  # one listener's bug must not keep the others from hearing
                logger.exception("a sign-in listener failed")
