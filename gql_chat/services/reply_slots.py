"""The per-user limit of replies in flight (`GQL_CHAT_MAX_CONCURRENT_GENERATIONS`), counted across
instances in Redis when several share it (`GQL_CHAT_REDIS_URL`).

Each instance first claims a slot of its own (`GenerationRunner.reserve`, exact within the
process), then one in the user's Redis sorted set `gql_chat:<db>:slots:<user id>`: a member per
slot, scored with the moment its lease runs out. A Lua script drops the expired members, counts
the rest and adds the new one in one step, on Redis's clock, so two instances cannot both take
the last slot and no two machines' clocks need agree. The holding instance renews its members
every third of `GQL_CHAT_REPLY_LEASE` and removes each when its send ends; the slots of an
instance that died (`kill -9`) free themselves when their lease runs out.

When Redis does not answer, the limit is counted per instance until it does (as the rate limits
are): refusing every send during an outage would take the service down with Redis, and each
instance still bounds what one user can run on it. The slots taken meanwhile, and those Redis lost
(a restart), are written again by the next renewal; a claim that timed out here, yet may still run
in Redis, is removed again at once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress

from bson import ObjectId
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gql_chat.services.generation import SendSlot
from gql_chat.services.tasks import end_tasks
from gql_chat.streams.redis_clients import OPERATION_TIMEOUT, redis_client

logger = logging.getLogger(__name__)

CLAIM = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', seconds)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], seconds + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
return 1
"""
"""KEYS[1] the user's set; ARGV: the member, the limit, the lease in seconds. 1 if claimed."""

RENEW = """
local now = redis.call('TIME')
local until_ = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], until_, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
return 1
"""
"""KEYS[1] the user's set; ARGV: the lease in seconds, then this instance's members (added
again when Redis lost them)."""


class SharedReplySlots:
    def __init__(self, redis: Redis, database_name: str, lease: float) -> None:
        self._redis = redis
        self._prefix = f"gql_chat:{database_name}:slots:"
        self._lease = lease
        self._claim = redis.register_script(CLAIM)
        self._renew = redis.register_script(RENEW)
        self._held: dict[SendSlot, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewing: asyncio.Task[None] | None = None
        self._available = True
        # A renewal and a release of the same member must not cross: a renewal writing a
        # member just released would hold a slot nobody has until its lease ran out.
        self._writing = asyncio.Lock()

    @classmethod
    def connect(cls, url: str, database_name: str, lease: float) -> SharedReplySlots:
        return cls(redis_client(url), database_name, lease)

    def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew_forever(), name="reply-slots-renew")

    async def close(self) -> None:
        if self._tasks:  # the releases of the replies that ended at shutdown
            await asyncio.wait(self._tasks, timeout=OPERATION_TIMEOUT)
        tasks = [*self._tasks, *([self._renewing] if self._renewing else [])]
        await end_tasks(tasks, "reply slot tasks")
        with suppress(Exception):
            await self._redis.aclose()

    async def claim(self, slot: SendSlot, limit: int) -> bool:
        """Whether the user is under `limit` replies in flight on every instance together (the
        slot is then held until `slot.freed`); True when Redis does not answer."""
        member = uuid.uuid4().hex
        key = self._key(slot.owner_id)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                claimed = await self._claim(keys=[key], args=[member, limit, self._lease])
        except (RedisError, OSError, TimeoutError):
            self._went_down()
            # The claim may still run in Redis: take it back, and hold the slot under a new
            # member, which the next renewal writes once Redis answers.
            self._remove_soon(slot.owner_id, member)
            self._hold(slot, uuid.uuid4().hex)
            return True
        self._came_back()
        if not claimed:
            return False
        self._hold(slot, member)
        return True

    def _hold(self, slot: SendSlot, member: str) -> None:
        self._held[slot] = member
        slot.freed.add_done_callback(lambda _: self._release_soon(slot))

    async def renew(self) -> None:
        """Push back the lease of every slot this instance holds."""
        by_owner: dict[ObjectId, list[str]] = {}
        for slot, member in self._held.items():
            by_owner.setdefault(slot.owner_id, []).append(member)
        if not by_owner:
            return
        try:
            async with (
                self._writing,
                asyncio.timeout(OPERATION_TIMEOUT * len(by_owner)),
                self._redis.pipeline(transaction=False) as pipe,
            ):
                for owner_id, members in by_owner.items():
                    await self._renew(
                        keys=[self._key(owner_id)], args=[self._lease, *members], client=pipe
                    )
                await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self._went_down()
            return
        self._came_back()

    def _release_soon(self, slot: SendSlot) -> None:
        member = self._held.pop(slot, None)
        if member is not None:
            self._remove_soon(slot.owner_id, member)

    def _remove_soon(self, owner_id: ObjectId, member: str) -> None:
        task = asyncio.create_task(self._remove(owner_id, member))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove(self, owner_id: ObjectId, member: str) -> None:
        try:
            async with self._writing, asyncio.timeout(OPERATION_TIMEOUT):
                await self._redis.zrem(self._key(owner_id), member)
        except (RedisError, OSError, TimeoutError):
            self._went_down()  # its lease frees it

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            await self.renew()

    def _key(self, owner_id: ObjectId) -> str:
        return f"{self._prefix}{owner_id}"

    def _went_down(self) -> None:
        if self._available:
            self._available = False
            logger.warning(
                "Redis does not answer: replies in flight are limited per instance until it does"
            )

    def _came_back(self) -> None:
        if not self._available:
            self._available = True
            logger.warning("Redis answers again: replies in flight are limited across instances")
