"""Live replies: a follower that joins at any moment (before the first delta, mid-stream, after
the end) or resumes after any seq must see each delta once, in order, then the end. The
interleavings come from seeded random schedules so a failure reproduces."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest
from bson import ObjectId

from gql_chat.domain.messages import Delta
from gql_chat.streams import replies
from gql_chat.streams.replies import LiveReply, Pacer, ReplyRegistry

SEEDS = range(40)


def new_reply() -> LiveReply[str]:
    return LiveReply(message_id=ObjectId(), owner_id=ObjectId())


async def idle(rng: random.Random, most: int = 4) -> None:
    """A random number of event-loop turns: the schedule's source of interleavings."""
    for _ in range(rng.randint(0, most)):
        await asyncio.sleep(0)


@dataclass
class Follower:
    after_seq: int
    got: list[Delta] = field(default_factory=list)
    saw_end: bool = False


async def follow(reply: LiveReply[str], follower: Follower, rng: random.Random) -> None:
    async for delta in reply.follow(follower.after_seq):
        follower.got.append(delta)
        await idle(rng, 2)  # a slow consumer, sometimes
    follower.saw_end = True


async def produce(
    reply: LiveReply[str], texts: list[str], rng: random.Random, *, fail: bool
) -> None:
    for text in texts:
        await idle(rng)
        assert reply.append(text).seq == len(reply.deltas)
    await idle(rng)
    if fail:
        reply.close()
    else:
        reply.finish("final")


async def run_schedule(seed: int, *, fail: bool = False) -> None:
    rng = random.Random(seed)
    texts = [f"d{i}-" + "x" * rng.randint(0, 3) for i in range(rng.randint(0, 25))]
    reply = new_reply()
    followers: list[Follower] = []
    tasks: list[asyncio.Task[None]] = []

    def join() -> None:
        # Mostly from the start; sometimes resuming after an arbitrary seq, past the end too.
        after = 0 if rng.random() < 0.5 else rng.randint(-2, len(texts) + 2)
        follower = Follower(after)
        followers.append(follower)
        tasks.append(asyncio.create_task(follow(reply, follower, rng)))

    for _ in range(rng.randint(0, 3)):
        join()  # before the first delta
    producer = asyncio.create_task(produce(reply, texts, rng, fail=fail))
    while not producer.done():
        if rng.random() < 0.3:
            join()  # during the stream
        await asyncio.sleep(0)
    await producer
    for _ in range(rng.randint(1, 3)):
        join()  # after the end
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    assert reply.done
    assert reply.final == (None if fail else "final")
    assert reply.closed is fail
    for follower in followers:
        start = min(max(follower.after_seq, 0), len(texts))
        assert follower.got == [
            Delta(seq, texts[seq - 1]) for seq in range(start + 1, len(texts) + 1)
        ]
        assert follower.saw_end


@pytest.mark.parametrize("seed", SEEDS)
async def test_followers_get_every_delta_once_in_order_then_the_end(seed: int) -> None:
    await run_schedule(seed)


@pytest.mark.parametrize("seed", range(10))
async def test_a_closed_reply_ends_its_followers_without_a_final(seed: int) -> None:
    """A producer that failed closes the reply: followers end (and fall back to the store)."""
    await run_schedule(seed, fail=True)


async def test_many_followers_of_one_reply() -> None:
    reply = new_reply()
    followers = [Follower(0) for _ in range(200)]
    rng = random.Random(7)
    tasks = [asyncio.create_task(follow(reply, f, rng)) for f in followers]
    texts = [str(i) for i in range(50)]
    await produce(reply, texts, rng, fail=False)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    expected = [Delta(i + 1, t) for i, t in enumerate(texts)]
    assert all(f.got == expected and f.saw_end for f in followers)


async def test_a_follower_waits_for_deltas_past_its_resume_point() -> None:
    """Resuming after a seq not produced yet: nothing until the reply passes it."""
    reply = new_reply()
    follower = Follower(3)
    task = asyncio.create_task(follow(reply, follower, random.Random(0)))
    for text in ["a", "b", "c"]:
        reply.append(text)
        await asyncio.sleep(0)
    assert follower.got == []
    assert not task.done()
    reply.append("d")
    for _ in range(3):
        await asyncio.sleep(0)
    assert follower.got == [Delta(4, "d")]
    reply.finish("f")
    await asyncio.wait_for(task, timeout=1)
    assert follower.saw_end


async def test_a_follower_that_stops_early_does_not_disturb_the_others() -> None:
    reply = new_reply()
    quitter = reply.follow(0)
    assert isinstance(quitter, AsyncGenerator)
    stayer = Follower(0)
    task = asyncio.create_task(follow(reply, stayer, random.Random(1)))
    reply.append("a")
    assert await quitter.__anext__() == Delta(1, "a")
    await quitter.aclose()
    reply.append("b")
    reply.finish("f")
    await asyncio.wait_for(task, timeout=1)
    assert stayer.got == [Delta(1, "a"), Delta(2, "b")]


async def test_a_long_replay_lets_the_event_loop_serve_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay of a finished reply never awaits a new delta; the pacer must still yield."""
    monkeypatch.setattr(replies, "YIELD_EVERY", 0.0)
    reply = new_reply()
    for i in range(100):
        reply.append(str(i))
    reply.finish("f")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    background = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    seen_at: list[int] = []
    async for _ in reply.follow(0):
        seen_at.append(ticks)
    background.cancel()
    assert len(seen_at) == 100
    assert seen_at[-1] - seen_at[0] >= 90  # the ticker ran between (nearly) every delta


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The pacers' clock, a one-second slice, and no pacer busy yet."""
    fake = FakeClock()
    monkeypatch.setattr(replies, "time", fake)
    monkeypatch.setattr(replies, "YIELD_EVERY", 1.0)
    monkeypatch.setattr(Pacer, "busy", 0)
    return fake


async def test_pacer_yields_only_once_its_interval_has_passed(clock: FakeClock) -> None:
    pacer = Pacer()
    ran = 0

    async def other() -> None:
        nonlocal ran
        ran += 1

    task = asyncio.create_task(other())
    for _ in range(100):
        await pacer.pace()  # no time passes: never yields
    assert ran == 0
    clock.now += 0.5
    await pacer.pace()
    assert ran == 0
    clock.now += 0.5
    await pacer.pace()  # a full interval since the start: yields, and starts a new interval
    assert ran == 1
    await task
    clock.now += 0.9
    pacer.reset()
    reset_at = clock.now
    clock.now += 0.9
    await pacer.pace()  # 0.9 since the reset: not yet
    assert pacer._since == reset_at
    pacer.idle()
    assert Pacer.busy == 0


async def test_busy_pacers_share_one_slice_and_idle_ones_do_not_count(clock: FakeClock) -> None:
    yields = 0

    async def count_yields(pacer: Pacer) -> None:
        nonlocal yields
        before = pacer._since
        await pacer.pace()
        yields += pacer._since != before

    with Pacer() as first, Pacer() as second, Pacer() as third, Pacer() as fourth:
        assert Pacer.busy == 4
        clock.now += 0.25  # a quarter of the slice: the share of one of four
        await count_yields(first)
        assert yields == 1
        second.idle()
        third.idle()  # waiting for their next delta
        fourth.reset()
        clock.now += 0.4  # under a half, the share of one of two
        await count_yields(fourth)
        assert yields == 1
        clock.now += 0.1
        await count_yields(fourth)
        assert yields == 2
        second.reset()
        assert Pacer.busy == 3
    assert Pacer.busy == 0  # leaving the block idles each, once


def test_registry_start_get_discard() -> None:
    registry: ReplyRegistry[str] = ReplyRegistry()
    owner = ObjectId()
    a, b = ObjectId(), ObjectId()
    reply_a = registry.start(a, owner)
    reply_b = registry.start(b, owner)
    assert registry.get(a) is reply_a
    assert (reply_a.message_id, reply_a.owner_id) == (a, owner)
    assert registry.active_for(owner) == [reply_a, reply_b]
    reply_a.finish("done")
    assert registry.active_for(owner) == [reply_b]  # done replies are not counted
    reply_b.close()
    assert registry.active_for(owner) == []
    registry.discard(a)
    assert registry.get(a) is None
    assert registry.get(b) is reply_b
    registry.discard(a)  # twice: a no-op
    registry.discard(ObjectId())  # never started: a no-op


def test_registry_keeps_owners_apart_and_forgets_an_owner_with_no_replies() -> None:
    """The per-owner index must not keep an entry per user that ever sent (it would grow)."""
    registry: ReplyRegistry[str] = ReplyRegistry()
    alice, bob = ObjectId(), ObjectId()
    ids = [ObjectId() for _ in range(4)]
    for i, message_id in enumerate(ids):
        registry.start(message_id, alice if i % 2 == 0 else bob)
    assert [r.message_id for r in registry.active_for(alice)] == [ids[0], ids[2]]
    assert [r.message_id for r in registry.active_for(bob)] == [ids[1], ids[3]]
    assert registry.active_for(ObjectId()) == []
    for message_id in ids:
        registry.discard(message_id)
    assert registry._by_owner == {}
    assert registry._replies == {}


@pytest.mark.parametrize("seed", range(5))
def test_registry_matches_a_model_under_random_operations(seed: int) -> None:
    rng = random.Random(seed)
    registry: ReplyRegistry[str] = ReplyRegistry()
    owners = [ObjectId() for _ in range(3)]
    model: dict[ObjectId, LiveReply[str]] = {}
    for _ in range(300):
        roll = rng.random()
        if roll < 0.45 or not model:
            message_id, owner = ObjectId(), rng.choice(owners)
            model[message_id] = registry.start(message_id, owner)
        elif roll < 0.75:
            message_id = rng.choice(list(model))
            registry.discard(message_id)
            del model[message_id]
        else:
            reply = rng.choice(list(model.values()))
            if rng.random() < 0.5:
                reply.finish("f")
            else:
                reply.close()
        for owner in owners:
            expected = [r for r in model.values() if r.owner_id == owner and not r.done]
            assert registry.active_for(owner) == expected
        assert all(registry.get(m) is r for m, r in model.items())
    assert set(registry._by_owner) == {r.owner_id for r in model.values()}
