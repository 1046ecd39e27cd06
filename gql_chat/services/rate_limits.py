"""Abuse limits on sign-in, registration, token refresh and sending, with the `limits` library.

Counters live in memory, or in Redis when `GQL_CHAT_REDIS_URL` is set (shared by all instances).
Every check runs inside the resolver, so each execution counts: aliases or repeated fields in one
document cannot slip past a limit."""

from __future__ import annotations

import math
import time

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from gql_chat.config import Settings
from gql_chat.errors import RateLimited

KNOWN_DEVICE_TTL = 90 * 24 * 3600


def open_storage(settings: Settings) -> Storage:
    if settings.redis_url is None:
        return MemoryStorage()
    url = settings.redis_url.get_secret_value()
    return RedisStorage(
        f"async+{url}" if not url.startswith("async+") else url, implementation="redispy"
    )


class RateLimits:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self.login_per_email = limits.parse(settings.rate_login_per_email)
        self.login_per_ip = limits.parse(settings.rate_login_per_ip)
        self.failed_logins = limits.parse(settings.rate_failed_logins_per_account)
        self.register_per_ip = limits.parse(settings.rate_register_per_ip)
        self.refresh_per_user = limits.parse(settings.rate_refresh_per_user)
        self.send_per_user = limits.parse(settings.rate_send_message_per_user)

    async def hit(self, rule: limits.RateLimitItem, *keys: str) -> None:
        """Count one attempt; RATE_LIMITED (with `retryAfter`) when over the limit."""
        if not await self._limiter.hit(rule, *keys):
            raise RateLimited(retry_after=await self._retry_after(rule, *keys))

    async def check(self, rule: limits.RateLimitItem, *keys: str) -> None:
        """Like `hit`, without counting."""
        if not await self._limiter.test(rule, *keys):
            raise RateLimited(retry_after=await self._retry_after(rule, *keys))

    async def count_failure(self, rule: limits.RateLimitItem, *keys: str) -> None:
        await self._limiter.hit(rule, *keys)

    async def remember(self, key: str) -> None:
        await self._storage.incr(f"gql_chat/known/{key}", KNOWN_DEVICE_TTL)

    async def remembers(self, key: str) -> bool:
        return await self._storage.get(f"gql_chat/known/{key}") > 0

    async def reset(self) -> None:
        await self._storage.reset()

    async def _retry_after(self, rule: limits.RateLimitItem, *keys: str) -> int:
        stats = await self._limiter.get_window_stats(rule, *keys)
        return max(1, math.ceil(stats.reset_time - time.time()))
