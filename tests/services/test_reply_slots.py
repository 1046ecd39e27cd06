"""The shared reply slots against a real Redis that stalls: a claim that gave up here, yet ran in
Redis afterwards, is taken back; the slot the send then holds is written by the next renewal and
removed when the reply ends. (With the app's 15 s lease, a phantom slot locked a user out.)"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest
from bson import ObjectId
from redis.asyncio import Redis

from gql_chat.services.generation import SendSlot
from gql_chat.services.reply_slots import SharedReplySlots
from tests.support import RedisServer

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (CI has it)"
)


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_claim_that_timed_out_in_a_stall_leaves_no_slot_behind(
    redis_server: RedisServer,
) -> None:
    slots = SharedReplySlots.connect(redis_server.url, "db", lease=15.0)
    redis = Redis.from_url(redis_server.url)
    owner = ObjectId()
    key = f"gql_chat:db:slots:{owner}"
    try:
        stall = asyncio.create_task(
            redis.execute_command("DEBUG", "SLEEP", "1.5")  # type: ignore[no-untyped-call]
        )
        await asyncio.sleep(0.1)
        slot = SendSlot(owner)
        assert await slots.claim(slot, limit=3)  # gave up after 1 s: counted here alone
        await stall
        await asyncio.sleep(0.2)  # Redis ran the claim, then the take-back
        assert await redis.zcard(key) == 0

        await slots.renew()
        assert await redis.zcard(key) == 1  # the slot the send holds

        slot.freed.set_result(None)  # the reply ended
        for _ in range(50):
            if await redis.zcard(key) == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the slot was not released")
    finally:
        await slots.close()
        await redis.aclose()
