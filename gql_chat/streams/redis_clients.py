"""The Redis clients of the cross-instance parts (`GQL_CHAT_REDIS_URL`), built one way."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

OPERATION_TIMEOUT = 1.0
"""The longest one Redis command may take before it counts as failed."""


def redis_client(
    url: str,
    *,
    socket_timeout: float | None = OPERATION_TIMEOUT,
    max_connections: int | None = None,
) -> Redis:
    """A client that sends a command again, at once and once, when its pooled connection turns
    out closed (Redis restarted): otherwise the first command on every connection pooled before
    a restart failed, and a reply-slot claim then counted only this instance's replies.

    Only a closed connection is retried, never a timeout (Redis is slow: waiting twice as long
    helps nobody). A command whose connection breaks after Redis ran it may run twice; each
    caller's commands are written so that this is harmless (stream entries have fixed ids, a
    slot claimed twice frees itself at its lease)."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=OPERATION_TIMEOUT,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
