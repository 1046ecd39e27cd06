"""Slotted stand-ins for `asyncio.Queue` and `asyncio.Event`, for objects kept per open
connection: an idle websocket holds its protocol's receive queue and send gate, and each
`userEvents` subscription its inbox, for hours. An `asyncio.Queue` is four deques and an Event
(about 3.3 KiB), an `asyncio.Event` a deque (0.9 KiB); these keep a buffer only while items
or waiters exist. Not a patch: plain code the patches (`uvicorn_websockets`) and the user-event
bus share."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


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
