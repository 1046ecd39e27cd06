"""`MovingDeadline` times waits out as `asyncio.timeout_at` would, with one timer moved lazily;
`CoarseTimeouts` as `asyncio.timeout` would, at most its resolution late, on one timer per loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from gql_chat.platform.lean_asyncio import CoarseTimeouts, MovingDeadline

FAR = 30.0
SHORT = 0.05
RESOLUTION = 0.02


def never() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def soon() -> asyncio.Future[None]:
    future = never()
    asyncio.get_running_loop().call_soon(future.set_result, None)
    return future


def count_timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every timer the running loop sets from now on, by deadline."""
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    return timers


async def test_a_wait_past_its_deadline_times_out() -> None:
    loop = asyncio.get_running_loop()
    deadline = MovingDeadline()
    started = loop.time()
    with pytest.raises(TimeoutError), deadline.after(SHORT):
        await never()
    assert loop.time() - started >= SHORT
    assert no_cancellation_left()


async def test_waits_within_later_deadlines_share_one_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timers = count_timers(monkeypatch)
    deadline = MovingDeadline()
    for _ in range(100):
        with deadline.after(FAR):
            await soon()
    assert len(timers) == 1
    deadline.close()


async def test_a_deadline_moved_later_while_armed_is_kept() -> None:
    """The timer set for the first deadline fires early for the second and is set again."""
    loop = asyncio.get_running_loop()
    deadline = MovingDeadline()
    with deadline.after(SHORT):
        await soon()
    started = loop.time()
    with pytest.raises(TimeoutError), deadline.after(3 * SHORT):
        await never()
    assert loop.time() - started >= 3 * SHORT


async def test_a_deadline_moved_earlier_is_not_late() -> None:
    loop = asyncio.get_running_loop()
    deadline = MovingDeadline()
    with deadline.after(FAR):
        await soon()
    started = loop.time()
    with pytest.raises(TimeoutError), deadline.after(SHORT):
        await never()
    assert loop.time() - started < FAR / 2


async def test_a_timer_firing_between_waits_cancels_nothing() -> None:
    deadline = MovingDeadline()
    with deadline.after(SHORT / 5):
        await soon()
    await asyncio.sleep(SHORT)  # its timer fires here, outside any wait
    with deadline.after(FAR):
        await asyncio.sleep(SHORT / 5)
    deadline.close()


@pytest.mark.parametrize("kind", ["moving", "coarse"])
async def test_another_cancellation_is_not_turned_into_a_timeout(kind: str) -> None:
    moving, coarse = MovingDeadline(), CoarseTimeouts(RESOLUTION)

    async def waiting() -> None:
        with moving.after(FAR) if kind == "moving" else coarse.after(FAR):
            await never()

    task = asyncio.ensure_future(waiting())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    moving.close()


async def test_one_wait_at_a_time() -> None:
    deadline = MovingDeadline()
    with deadline.after(FAR), pytest.raises(RuntimeError), deadline.after(FAR):
        pass
    deadline.close()


def no_cancellation_left() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


async def outcome_under_asyncio(when: float, waits_forever: bool) -> str:
    try:
        async with asyncio.timeout_at(when):
            await (never() if waits_forever else soon())
    except TimeoutError:
        return "timed out"
    return "done"


async def outcome_under_moving(deadline: MovingDeadline, when: float, waits_forever: bool) -> str:
    try:
        with deadline.at(when):
            await (never() if waits_forever else soon())
    except TimeoutError:
        return "timed out"
    return "done"


@pytest.mark.parametrize("seed", range(4))
async def test_random_runs_time_out_exactly_when_asyncio_timeout_would(seed: int) -> None:
    """A random run of waits (done at once or never), deadlines (far, short, already past) and
    pauses between waits (some long enough for the timer to fire outside a wait): each wait
    ends as under `asyncio.timeout_at` with the same deadline, and the task is left with no
    pending cancellation."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    moving = MovingDeadline()
    for _ in range(12):
        waits_forever = rng.random() < 0.4
        offset = rng.choice([SHORT, -SHORT] if waits_forever else [FAR, SHORT, FAR * 2])
        expected = "timed out" if waits_forever else "done"
        assert await outcome_under_asyncio(loop.time() + offset, waits_forever) == expected
        assert await outcome_under_moving(moving, loop.time() + offset, waits_forever) == expected
        assert no_cancellation_left()
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice([0, SHORT / 5, SHORT * 1.5]))
    moving.close()


LATE = 1.0
"""Slack for a slow machine: a coarse wait ends within its resolution, plus this."""


async def test_a_coarse_wait_past_its_deadline_times_out_within_the_resolution() -> None:
    loop = asyncio.get_running_loop()
    timeouts = CoarseTimeouts(RESOLUTION)
    started = loop.time()
    with pytest.raises(TimeoutError), timeouts.after(SHORT):
        await never()
    assert SHORT <= loop.time() - started < SHORT + RESOLUTION + LATE
    assert no_cancellation_left()


async def test_coarse_waits_over_at_once_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = count_timers(monkeypatch)
    timeouts = CoarseTimeouts(FAR)
    for _ in range(100):
        with timeouts.after(FAR):
            await soon()
    assert len(timers) == 1
    assert no_cancellation_left()


async def test_the_timer_stops_once_no_wait_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = count_timers(monkeypatch)
    timeouts = CoarseTimeouts(RESOLUTION)
    with timeouts.after(FAR):
        await soon()
    assert len(timers) == 1
    await asyncio.sleep(RESOLUTION * 5)  # its tick finds nothing open, and does not set again
    assert len(timers) == 2  # the tick's, and this sleep's own


def test_coarse_timeouts_serve_one_loop_after_another() -> None:
    """The same instance (one per app) on successive event loops, as test clients use it."""
    timeouts = CoarseTimeouts(RESOLUTION)

    async def stalls() -> bool:
        try:
            with timeouts.after(SHORT):
                await never()
        except TimeoutError:
            return True
        return False

    assert asyncio.run(stalls())
    assert asyncio.run(stalls())


async def test_coarse_waits_outside_a_task_are_refused() -> None:
    loop = asyncio.get_running_loop()
    refused = loop.create_future()

    def in_a_callback() -> None:
        try:
            with CoarseTimeouts(RESOLUTION).after(FAR):
                pass
        except RuntimeError as error:
            refused.set_result(str(error))

    loop.call_soon(in_a_callback)
    assert "inside a task" in await refused


@pytest.mark.parametrize("seed", range(4))
async def test_random_concurrent_coarse_waits_end_as_asyncio_timeout_would(seed: int) -> None:
    """Tasks with random deadlines, each waiting at once, forever, or for a while: a wait ends
    as under `asyncio.timeout` with the same deadline, never earlier than its deadline and at
    most the resolution later, and no task is left with a pending cancellation."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    timeouts = CoarseTimeouts(RESOLUTION)

    async def one_wait(seconds: float, waits: float | None) -> tuple[str, float]:
        started = loop.time()
        try:
            with timeouts.after(seconds):
                await (never() if waits is None else asyncio.sleep(waits))
        except TimeoutError:
            return "timed out", loop.time() - started
        finally:
            assert no_cancellation_left()
        return "done", loop.time() - started

    plans = []
    for _ in range(40):
        seconds = rng.choice([SHORT, SHORT * 2, FAR])
        waits = rng.choice([None, 0.0, SHORT / 5, FAR * 2 if seconds < FAR else SHORT / 2])
        plans.append((seconds, waits))
    outcomes = await asyncio.gather(*(one_wait(seconds, waits) for seconds, waits in plans))
    for (seconds, waits), (outcome, took) in zip(plans, outcomes, strict=True):
        expected = "timed out" if waits is None or waits > seconds else "done"
        assert outcome == expected, (seconds, waits)
        if outcome == "timed out":
            assert seconds <= took < seconds + RESOLUTION + LATE
