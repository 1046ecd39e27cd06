"""`KeyedLock`: holders of one key run one at a time, other keys do not wait, and the map holds
only keys in use (a lock per user must not outlive the user's requests)."""

from __future__ import annotations

import asyncio
import random

from gql_chat.services.keyed_lock import KeyedLock


async def test_one_key_at_a_time_other_keys_free_and_nothing_left_behind() -> None:
    lock = KeyedLock()
    rng = random.Random(20261203)
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    overlapped = False

    async def hold(key: str) -> None:
        nonlocal overlapped
        async with lock(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            if inside["a"] and inside["b"]:
                overlapped = True
            await asyncio.sleep(rng.random() / 500)
            inside[key] -= 1

    await asyncio.gather(*(hold(rng.choice("ab")) for _ in range(60)))
    assert most == {"a": 1, "b": 1}
    assert overlapped, "holders of different keys must not wait for each other"
    assert len(lock) == 0


async def test_a_holder_that_fails_releases_its_key() -> None:
    lock = KeyedLock()
    try:
        async with lock("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert len(lock) == 0
    async with asyncio.timeout(1), lock("a"):
        pass
