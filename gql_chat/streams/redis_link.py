"""Redis between app instances (`GQL_CHAT_REDIS_URL`): pub/sub for what every instance must hear
at once, today user events and stop signals.

Redis is a messenger here, never the record (MongoDB is): every operation is bounded, an outage is
logged once when it starts and once when it ends, and meanwhile each instance carries on alone (its
own events, its own replies). Two fixed channels, subscribed once: every instance hears every
message and keeps what concerns it (a user with subscribers here, a reply running here). That costs
one delivery per instance per message, nothing at a few instances, and leaves no subscription to
set up per user, so nothing can be missed while one would be."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gql_chat.streams.redis_clients import OPERATION_TIMEOUT, redis_client

logger = logging.getLogger(__name__)

LISTEN_POLL = 1.0
"""How long the listener waits for a message before checking the connection again."""
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Back-off between attempts to reach Redis again (the last one repeats)."""
OUTBOX_LIMIT = 10_000
"""Messages waiting to be published; beyond it the oldest are dropped (Redis is down or slow,
and the events are hints: clients re-read what they show)."""

Handler = Callable[[dict[str, Any]], None]


class RedisLink:
    """One instance's connection: `publish` (in order, never blocking the caller) and a
    handler per channel, called with each message another instance published."""

    def __init__(self, url: str, handlers: dict[str, Handler]) -> None:
        self.instance_id = uuid.uuid4().hex
        self._redis: Redis = redis_client(url)
        self._handlers = {channel.encode(): handler for channel, handler in handlers.items()}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._available = True
        self._dropped = 0

    @property
    def available(self) -> bool:
        """Whether the last exchange with Redis worked."""
        return self._available

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-listen"),
            asyncio.create_task(self._send(), name="redis-send"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Queue `message` for the other instances (this one does not hear it back)."""
        payload = orjson.dumps({**message, "origin": self.instance_id})
        if self._outbox.full():
            self._outbox.get_nowait()
            self._dropped += 1
            if self._dropped == 1:
                logger.warning("Redis is not keeping up; dropping the oldest messages")
        self._outbox.put_nowait((channel, payload))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError):
            self._went_down()
            return False
        self._came_back()
        return True

    async def _send(self) -> None:
        attempt = 0
        while True:
            channel, payload = await self._outbox.get()
            while True:
                try:
                    async with asyncio.timeout(OPERATION_TIMEOUT):
                        await self._redis.publish(channel, payload)
                except (RedisError, OSError, TimeoutError):
                    self._went_down()
                    await asyncio.sleep(_delay(attempt))
                    attempt += 1
                    continue
                attempt = 0
                self._dropped = 0
                self._came_back()
                break

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(OPERATION_TIMEOUT):
                    await pubsub.subscribe(*self._handlers)
                self._came_back()
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_POLL)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError, TimeoutError):
                self._went_down()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_delay(attempt))
            attempt += 1

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        handler = self._handlers.get(channel)
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            logger.warning("ignored a malformed message on a gql_chat Redis channel")
            return
        if handler is None or not isinstance(message, dict):
            return
        if message.get("origin") == self.instance_id:
            return
        try:
            handler(message)
        except Exception:
            logger.exception("a Redis message handler failed")

    def _went_down(self) -> None:
        if self._available:
            self._available = False
            logger.warning(
                "Redis is unreachable: this instance carries on alone (events and stop signals "
                "of other instances are not heard) until it answers again"
            )

    def _came_back(self) -> None:
        if not self._available:
            self._available = True
            logger.warning("Redis answers again: instances hear each other again")


def _delay(attempt: int) -> float:
    return RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
