"""Slotted stand-ins for `asyncio.Queue` and `asyncio.Event`, for objects kept per open
connection: an idle websocket holds its protocol's receive queue and send gate, and each
`userEvents` subscription its inbox, for hours. An `asyncio.Queue` is four deques and an Event
(about 3.3 KiB), an `asyncio.Event` a deque (0.9 KiB); these keep a buffer only while items
or waiters exist. `MovingDeadline`, a stand-in for `asyncio.timeout_at` in loops that give
every wait a new deadline (a streamed reply's reads), and `CoarseTimeouts`, one timer for many
waits that are usually over at once (request bodies). Not a patch: plain code the patches
(`uvicorn_websockets`, `httpcore_network`), the user-event bus, the provider client and the
body-size middleware share."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


def _current_task(user: str) -> asyncio.Task[object]:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError(f"{user} must be used inside a task")
    return task


def _end_of_an_expired_wait(
    task: asyncio.Task[object],
    cancelling: int,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
) -> None:
    """As asyncio.timeout: the cancellation of a wait past its deadline leaves it as
    TimeoutError, unless another cancellation came with it."""
    if task.uncancel() <= cancelling and exc_type is asyncio.CancelledError:
        raise TimeoutError from exc


class LeanQueue(Generic[T]):
    """An unbounded queue for one reader (what uvicorn's protocol and the user-event bus use of
    `asyncio.Queue`). The buffer exists only while items wait."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


class LeanEvent:
    """`asyncio.Event` without its deque: waiters are kept only while the flag is clear (the
    transport's write buffer is full), which is rare and short."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class MovingDeadline:
    """`asyncio.timeout_at` for a run of waits, each with its own deadline: `with
    deadline.at(when): await ...` raises TimeoutError when `when` passes during the wait, and
    leaves any other cancellation alone, as `asyncio.timeout_at` does.

    Why: `asyncio.timeout` builds a `Timeout`, a timer handle and two coroutines per wait, about
    11 us here; a streamed reply waited under two for each of its chunks (the provider client's
    gap and httpcore's read). This moves one timer lazily: a new deadline is a float, the timer
    is replaced only when the deadline moves earlier than it, and when it fires early (the
    deadline moved later) it is set again for the deadline (about 2 us a wait). One wait at a
    time; `close` drops the timer when the run ends."""

    __slots__ = ("_cancelling", "_expired", "_loop", "_task", "_timer", "_when")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._when = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False

    def at(self, when: float) -> MovingDeadline:
        """The next wait's deadline, on the event loop's clock (`loop.time()`)."""
        self._when = when
        return self

    def after(self, seconds: float) -> MovingDeadline:
        """The next wait's deadline, `seconds` from now."""
        self._when = self._loop.time() + seconds
        return self

    def __enter__(self) -> MovingDeadline:
        if self._task is not None:
            raise RuntimeError("MovingDeadline: one wait at a time")
        self._task = task = _current_task("MovingDeadline")
        self._cancelling = task.cancelling()
        timer = self._timer
        if timer is None or timer.when() > self._when:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(self._when, self._expire)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if self._expired:
            self._expired = False
            if task is not None:
                _end_of_an_expired_wait(task, self._cancelling, exc_type, exc)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._task is None:  # between waits: the next one sets its own timer
            return
        if self._loop.time() < self._when:  # the deadline moved later since
            self._timer = self._loop.call_at(self._when, self._expire)
            return
        self._expired = True
        self._task.cancel()


class CoarseTimeouts:
    """`asyncio.timeout` for many waits that are nearly always over at once, such as reading a
    request body that has already arrived, on one timer per event loop.

    Why: `asyncio.timeout` (or `loop.call_at`) builds a timer handle per wait, pushes it on the
    loop's heap and leaves it there cancelled; for a small GraphQL request that was about 5 us
    of 120. Here opening a wait is a dict entry. The loop's one timer ticks every `resolution`
    seconds while any wait is open; a wait found past its deadline is cancelled and raises
    TimeoutError, as under `asyncio.timeout`, at most `resolution` late."""

    __slots__ = ("_resolution", "_watches")

    def __init__(self, resolution: float) -> None:
        self._resolution = resolution
        self._watches: dict[asyncio.AbstractEventLoop, _Watch] = {}

    def after(self, seconds: float) -> CoarseWait:
        """One wait, `seconds` from now at most: `with timeouts.after(s): await ...`."""
        return CoarseWait(self, seconds)

    def _open(self, wait: CoarseWait, seconds: float) -> _Watch:
        loop = asyncio.get_running_loop()
        watch = self._watches.get(loop)
        if watch is None:
            watch = self._watches[loop] = _Watch(loop)
        watch.waits[wait] = loop.time() + seconds
        if watch.timer is None:
            watch.timer = loop.call_later(self._resolution, self._tick, watch)
        return watch

    def _tick(self, watch: _Watch) -> None:
        watch.timer = None
        now = watch.loop.time()
        for wait in [wait for wait, when in watch.waits.items() if when <= now]:
            del watch.waits[wait]
            wait.expire()
        if watch.waits:
            watch.timer = watch.loop.call_later(self._resolution, self._tick, watch)
        else:  # nothing open on this loop: no timer, and nothing kept for it
            del self._watches[watch.loop]


class _Watch:
    """One event loop's open waits, by deadline, and its timer while any is open."""

    __slots__ = ("loop", "timer", "waits")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timer: asyncio.TimerHandle | None = None
        self.waits: dict[CoarseWait, float] = {}


class CoarseWait:
    """One wait of `CoarseTimeouts`: its task is cancelled once past its deadline, and the
    cancellation leaves the `with` block as TimeoutError unless another came with it."""

    __slots__ = ("_cancelling", "_expired", "_seconds", "_task", "_timeouts", "_watch")

    def __init__(self, timeouts: CoarseTimeouts, seconds: float) -> None:
        self._timeouts = timeouts
        self._seconds = seconds
        self._expired = False

    def __enter__(self) -> CoarseWait:
        self._task = task = _current_task("CoarseTimeouts")
        self._cancelling = task.cancelling()
        self._watch = self._timeouts._open(self, self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._watch.waits.pop(self, None)
        if self._expired:
            _end_of_an_expired_wait(self._task, self._cancelling, exc_type, exc)

    def expire(self) -> None:
        self._expired = True
        self._task.cancel()
