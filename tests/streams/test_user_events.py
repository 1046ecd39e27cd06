"""The per-user event bus: every subscriber of a user gets that user's events in order and no
one else's, leaves no trace when it ends, and a subscriber that stops reading costs a bounded
buffer (its oldest events are dropped) and one log line, not one per event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator

import pytest
from bson import ObjectId

from gql_chat.streams import user_events
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

LAG_WARNING = "fell behind"


def event(index: int) -> UserEvent:
    """Events told apart by their conversation id."""
    return UserEvent(UserEventKind.CONVERSATION_UPDATED, conversation_id=ObjectId(f"{index:024x}"))


def index_of(received: UserEvent) -> int:
    assert received.conversation_id is not None
    return int(str(received.conversation_id), 16)


class Subscription:
    """A subscription that is registered: the generator's body runs on its first `__anext__`,
    so that read is started at once and left waiting for the first event."""

    def __init__(self, stream: AsyncGenerator[UserEvent, None]) -> None:
        self.stream = stream
        self.pending: asyncio.Future[UserEvent] | None = asyncio.ensure_future(anext(stream))

    async def next(self) -> UserEvent:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            return await asyncio.wait_for(pending, timeout=1)
        return await asyncio.wait_for(anext(self.stream), timeout=1)

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pending
        await self.stream.aclose()


async def subscribed(bus: UserEventBus, owner: ObjectId) -> Subscription:
    before = bus.subscriber_count(owner)
    stream = bus.subscribe(owner)
    assert isinstance(stream, AsyncGenerator)
    subscription = Subscription(stream)
    await asyncio.sleep(0)
    assert bus.subscriber_count(owner) == before + 1
    return subscription


async def take(subscription: Subscription, count: int) -> list[int]:
    return [index_of(await subscription.next()) for _ in range(count)]


async def test_subscribers_get_their_users_events_in_order() -> None:
    bus = UserEventBus()
    alice, bob = ObjectId(), ObjectId()
    alice_tabs = [await subscribed(bus, alice) for _ in range(3)]
    bob_tab = await subscribed(bus, bob)
    for i in range(10):
        bus.publish(alice if i % 2 == 0 else bob, event(i))
    for tab in alice_tabs:
        assert await take(tab, 5) == [0, 2, 4, 6, 8]
    assert await take(bob_tab, 5) == [1, 3, 5, 7, 9]
    bus.publish(bob, event(99))
    assert await take(bob_tab, 1) == [99]  # nothing of alice's was left queued for bob
    for stream in [*alice_tabs, bob_tab]:
        await stream.close()


async def test_publishing_to_a_user_without_subscribers_is_a_no_op() -> None:
    bus = UserEventBus()
    owner = ObjectId()
    bus.publish(owner, event(1))
    assert bus.subscriber_count(owner) == 0
    assert bus._subscribers == {}  # a publish must not create an entry per user


async def test_an_ended_subscription_is_forgotten() -> None:
    bus = UserEventBus()
    owner = ObjectId()
    first = await subscribed(bus, owner)
    second = await subscribed(bus, owner)
    assert bus.subscriber_count(owner) == 2
    await first.close()
    assert bus.subscriber_count(owner) == 1
    bus.publish(owner, event(1))
    assert await take(second, 1) == [1]
    await second.close()
    assert bus.subscriber_count(owner) == 0
    assert owner not in bus._subscribers


async def test_a_cancelled_subscriber_is_forgotten() -> None:
    """A websocket that drops cancels the task iterating the subscription."""
    bus = UserEventBus()
    owner = ObjectId()

    async def consume() -> None:
        async for _ in bus.subscribe(owner):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    assert bus.subscriber_count(owner) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bus.subscriber_count(owner) == 0


async def test_a_subscriber_that_stops_reading_keeps_only_the_newest_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(user_events, "SUBSCRIBER_BUFFER", 10)
    bus = UserEventBus()
    owner = ObjectId()
    slow = await subscribed(bus, owner)
    with caplog.at_level(logging.WARNING, logger=user_events.__name__):
        for i in range(25):
            bus.publish(owner, event(i))
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if LAG_WARNING in r.getMessage())
    ) == 1  # once per subscriber, not once per dropped event
    assert await take(slow, 10) == list(range(15, 25))

    # Caught up: falling behind again is worth a new line.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=user_events.__name__):
        for i in range(25, 40):
            bus.publish(owner, event(i))
    assert sum(LAG_WARNING in r.getMessage() for r in caplog.records) == 1
    assert await take(slow, 10) == list(range(30, 40))
    await slow.close()
    assert bus._lagging == set()


async def test_one_slow_subscriber_does_not_cost_a_fast_one_its_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(user_events, "SUBSCRIBER_BUFFER", 5)
    bus = UserEventBus()
    owner = ObjectId()
    slow = await subscribed(bus, owner)
    fast = await subscribed(bus, owner)
    got: list[int] = []
    for i in range(20):
        bus.publish(owner, event(i))
        got += await take(fast, 1)
    assert got == list(range(20))
    # The slow one's read in flight holds the first event; its buffer holds the newest five.
    assert await take(slow, 6) == [0, *range(15, 20)]
    for stream in (slow, fast):
        await stream.close()


@pytest.mark.parametrize("seed", range(10))
async def test_random_schedules_deliver_everything_in_order_within_the_buffer(seed: int) -> None:
    """Subscribers come and go and read at random speeds; none falls a buffer behind, so each
    gets exactly the events published while it was subscribed, in order."""
    rng = random.Random(seed)
    bus = UserEventBus()
    owner = ObjectId()
    published: list[int] = []
    results: dict[int, tuple[int, int, list[int], int]] = {}

    async def subscriber(number: int) -> None:
        not_before = len(published)
        stream = bus.subscribe(owner)
        assert isinstance(stream, AsyncGenerator)
        subscription = Subscription(stream)
        await asyncio.sleep(0)
        not_after = len(published)  # it is registered by now
        got: list[int] = []
        budget = rng.randint(1, 40)
        while len(got) < budget:
            got.append(index_of(await subscription.next()))
            for _ in range(rng.randint(0, 2)):
                await asyncio.sleep(0)
        await subscription.close()
        results[number] = (not_before, not_after, got, budget)

    tasks: list[asyncio.Task[None]] = []
    for i in range(300):
        if rng.random() < 0.05:
            tasks.append(asyncio.create_task(subscriber(len(tasks))))
            await asyncio.sleep(0)
        bus.publish(owner, event(i))
        published.append(i)
        for _ in range(rng.randint(0, 2)):
            await asyncio.sleep(0)
    for i in range(300, 400):  # enough for every subscriber to reach its budget
        bus.publish(owner, event(i))
        published.append(i)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert tasks
    assert len(results) == len(tasks)
    for not_before, not_after, got, budget in results.values():
        joined = published.index(got[0])
        assert not_before <= joined <= not_after
        assert got == published[joined : joined + budget]
    assert bus.subscriber_count(owner) == 0
