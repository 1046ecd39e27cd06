"""Work that must not be cut halfway when its caller goes away (a cancelled websocket
operation, a dropped request): it runs in a task of its own, bounded in time, and the caller
awaits it shielded."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Completions:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._running: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """`work` in its own task, cancelled after `timeout` seconds (each of its steps should
        have its own, shorter bound). Its outcome is retrieved even when nobody awaits it."""

        async def bounded() -> T:
            async with asyncio.timeout(self._timeout):
                return await work

        task = asyncio.create_task(bounded())
        self._running.add(task)

        def done(finished: asyncio.Task[T]) -> None:
            self._running.discard(finished)
            if not finished.cancelled():
                finished.exception()  # retrieved: the caller may have gone

        task.add_done_callback(done)
        return task

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Start `work` and wait for it; cancelling the caller leaves it running to its end."""
        return await asyncio.shield(self.start(work))
