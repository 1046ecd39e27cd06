"""Fixes for httpcore's connection pool, which the OpenRouter client's keep-alive reuse needs.

httpcore 1.0.9 (the version we lock) assigns queued requests to connections in a pass that is
quadratic in the number of pooled connections, and that hands the same idle connection to every
request queued at that moment: all but one then fail to start on it and queue again, each retry
another full pass (encode/httpcore#1035 and #1110, fixed the same way in pydantic/httpx2#974 and
#1075). With fifty replies starting at once over fifty idle keep-alive connections, that churn
cost more CPU than the replies themselves. `install()` replaces that one method with a linear
pass that gives each idle connection to one request only. The replacement is only known to be
right for this one version: `require_supported_versions` stops start-up on any other (re-check
this module, and whether upstream fixed the pass, when upgrading httpcore).

Under asyncio, httpcore's lock and event (anyio's) also hand the event loop a turn when the lock
is free or the event already set. A request on an idle keep-alive connection passed three such
turns before its bytes were written; under load each turn is every other ready callback, and at
fifty streamed replies the request took 5-10 ms to leave (p50) instead of 0.7 ms. `install()`
takes a free lock and returns from a set event at once (anyio's own `fast_acquire`); contended
locks and unset events wait as before.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpcore
from httpcore._async.connection_pool import AsyncConnectionPool
from httpcore._synchronization import AsyncEvent, AsyncLock

from gql_chat.platform.versions import UnsupportedVersion, require_versions

SUPPORTED_HTTPCORE = ("1.0.9",)
"""The httpcore version whose pool, lock and event this module was checked against (exact:
the pass it replaces changes between patch releases)."""


def _assign_requests_to_connections(self: Any) -> list[Any]:
    """httpcore's three cases (reuse an available connection, open a new one, or close an idle
    one to make room), minus connections already promised to a request that has not started
    on them yet (they still look idle and available)."""
    closing: list[Any] = []
    idle = sum(1 for connection in self._connections if connection.is_idle())
    for connection in list(self._connections):
        if connection.is_closed():
            self._connections.remove(connection)
        elif connection.has_expired():
            self._connections.remove(connection)
            closing.append(connection)
            idle -= connection.is_idle()
        elif connection.is_idle() and idle > self._max_keepalive_connections:
            self._connections.remove(connection)
            closing.append(connection)
            idle -= 1

    promised = {
        id(request.connection)
        for request in self._requests
        if request.connection is not None and request.connection.is_idle()
    }
    for pool_request in self._requests:
        if not pool_request.is_queued():
            continue
        origin = pool_request.request.url.origin
        connection = next(
            (
                c
                for c in self._connections
                if id(c) not in promised and c.can_handle_request(origin) and c.is_available()
            ),
            None,
        )
        if connection is None:
            if len(self._connections) >= self._max_connections:
                spare = next(
                    (c for c in self._connections if id(c) not in promised and c.is_idle()), None
                )
                if spare is None:
                    continue  # stays queued until a connection frees up
                self._connections.remove(spare)
                closing.append(spare)
            connection = self.create_connection(origin)
            self._connections.append(connection)
        pool_request.assign_to_connection(connection)
        if connection.is_idle():
            promised.add(id(connection))
    return closing


_lock_setup = AsyncLock.setup
_event_wait = AsyncEvent.wait


def _setup_fast_lock(self: AsyncLock) -> None:
    _lock_setup(self)
    if self._backend == "asyncio":
        self._anyio_lock = anyio.Lock(fast_acquire=True)


async def _wait_unless_set(self: AsyncEvent, timeout: float | None = None) -> None:  # noqa: ASYNC109
    if self._backend == "asyncio" and self._anyio_event.is_set():
        return
    await _event_wait(self, timeout)


def require_supported_versions() -> None:
    """Stop start-up when httpcore is a version this module was not checked against."""
    require_versions(__name__, {"httpcore": SUPPORTED_HTTPCORE}, {"httpcore": httpcore.__version__})
    for cls, name in (
        (AsyncConnectionPool, "_assign_requests_to_connections"),
        (AsyncLock, "setup"),
        (AsyncEvent, "wait"),
    ):
        if not callable(getattr(cls, name, None)):
            raise UnsupportedVersion(f"httpcore's {cls.__name__} has no {name}()")


def install() -> None:
    """Replace the pool's assignment pass, and its lock's and event's free paths (idempotent:
    the originals are kept from before the first install)."""
    require_supported_versions()
    AsyncConnectionPool._assign_requests_to_connections = _assign_requests_to_connections  # type: ignore[method-assign]
    AsyncLock.setup = _setup_fast_lock  # type: ignore[method-assign]
    AsyncEvent.wait = _wait_unless_set  # type: ignore[method-assign]
