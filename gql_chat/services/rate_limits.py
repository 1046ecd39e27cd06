"""Abuse limits on sign-in, registration, token refresh and sending, with the `limits` library.

Counters live in memory, or in Redis when `GQL_CHAT_REDIS_URL` is set (shared by all instances).
Every check runs inside the resolver, so each execution counts: aliases or repeated fields in one
document cannot slip past a limit.

When Redis does not answer (each call is bounded), the limits fall back to counting in this
instance's memory until it does: neither open (no limit while Redis is down would invite brute
force) nor closed (nobody could sign in or send). Meanwhile a client spread over N instances gets
up to N times each limit."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from gql_chat.config import Settings
from gql_chat.errors import RateLimited

logger = logging.getLogger(__name__)

KNOWN_DEVICE_TTL = 90 * 24 * 3600


STORAGE_TIMEOUT = 1.0
"""The longest one call to the shared counters may take before this instance counts alone."""


def open_storage(settings: Settings) -> Storage:
    if settings.redis_url is None:
        return MemoryStorage()
    url = settings.redis_url.get_secret_value()
    return RedisStorage(
        f"async+{url}" if not url.startswith("async+") else url,
        implementation="redispy",
        wrap_exceptions=True,
        socket_timeout=STORAGE_TIMEOUT,
        socket_connect_timeout=STORAGE_TIMEOUT,
    )


RETRY_SHARED = 5.0
"""While the shared counters do not answer, how often to try them again."""

T = TypeVar("T")


@dataclass(frozen=True)
class _Counters:
    storage: Storage
    limiter: MovingWindowRateLimiter

    @classmethod
    def over(cls, storage: Storage) -> _Counters:
        return cls(storage, MovingWindowRateLimiter(storage))


class RateLimits:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._shared = _Counters.over(storage)
        self._local = (
            None if isinstance(storage, MemoryStorage) else _Counters.over(MemoryStorage())
        )
        self._shared_down = False
        self._retry_shared_at = 0.0
        self.login_per_email = limits.parse(settings.rate_login_per_email)
        self.login_per_ip = limits.parse(settings.rate_login_per_ip)
        self.failed_logins = limits.parse(settings.rate_failed_logins_per_account)
        self.register_per_ip = limits.parse(settings.rate_register_per_ip)
        self.shared_reads_per_ip = limits.parse(settings.rate_shared_reads_per_ip)
        self.password_reset_per_email = limits.parse(settings.rate_password_reset_per_email)
        self.password_reset_per_ip = limits.parse(settings.rate_password_reset_per_ip)
        self.verification_mail_per_user = limits.parse(settings.rate_verification_mail_per_user)
        self.refresh_per_user = limits.parse(settings.rate_refresh_per_user)
        self.send_per_user = limits.parse(settings.rate_send_message_per_user)

    async def hit(self, rule: limits.RateLimitItem, *keys: str) -> None:
        """Count one attempt; RATE_LIMITED (with `retryAfter`) when over the limit."""
        if not await self._run(lambda c: c.limiter.hit(rule, *keys)):
            raise RateLimited(retry_after=await self._retry_after(rule, *keys))

    async def check(self, rule: limits.RateLimitItem, *keys: str) -> None:
        """Like `hit`, without counting."""
        if not await self._run(lambda c: c.limiter.test(rule, *keys)):
            raise RateLimited(retry_after=await self._retry_after(rule, *keys))

    async def count_failure(self, rule: limits.RateLimitItem, *keys: str) -> None:
        await self._run(lambda c: c.limiter.hit(rule, *keys))

    async def remember(self, key: str) -> None:
        await self._run(lambda c: c.storage.incr(f"gql_chat/known/{key}", KNOWN_DEVICE_TTL))

    async def remembers(self, key: str) -> bool:
        return await self._run(lambda c: c.storage.get(f"gql_chat/known/{key}")) > 0

    async def reset(self) -> None:
        await self._shared.storage.reset()
        if self._local is not None:
            await self._local.storage.reset()

    async def _retry_after(self, rule: limits.RateLimitItem, *keys: str) -> int:
        stats = await self._run(lambda c: c.limiter.get_window_stats(rule, *keys))
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _run(self, operation: Callable[[_Counters], Awaitable[T]]) -> T:
        """On the shared counters, or on this instance's while those do not answer (tried
        again every `RETRY_SHARED` seconds)."""
        if self._local is None:
            return await operation(self._shared)
        now = time.monotonic()
        if now >= self._retry_shared_at:
            try:
                async with asyncio.timeout(STORAGE_TIMEOUT):
                    result = await operation(self._shared)
            except (StorageError, TimeoutError):
                if not self._shared_down:
                    logger.warning(
                        "the shared rate-limit counters (Redis) do not answer: counting in this "
                        "instance's memory until they do"
                    )
                self._shared_down = True
                self._retry_shared_at = now + RETRY_SHARED
            else:
                if self._shared_down:
                    logger.warning("the shared rate-limit counters (Redis) answer again")
                    self._shared_down = False
                return result
        return await operation(self._local)
