"""With several instances: each reply in progress holds a lease in MongoDB (`lease_until` on its
message), renewed by the instance generating it every third of `GQL_CHAT_REPLY_LEASE`. Every
instance sweeps, every half lease, for unfinished replies whose lease ran out: their instance
died (`kill -9`, a lost machine), so they become INTERRUPTED with the text saved so far, and
their followers anywhere get `done`. Nothing waits for the dead process to start again, and
start-up no longer ends every unfinished reply, only those whose lease ran out, so a restart
never cuts a reply another live instance is generating.

One instance alone (no Redis) keeps the simpler rule: at start-up, every unfinished reply was
its own, and ends then."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.services.generation import WRITE_TIMEOUT, GenerationRunner
from gql_chat.store.messages import MessageStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ReplyLeases:
    def __init__(
        self, settings: Settings, messages: MessageStore, runner: GenerationRunner
    ) -> None:
        self._lease = timedelta(seconds=settings.reply_lease)
        self._messages = messages
        self._runner = runner
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="reply-leases-renew"),
            asyncio.create_task(self._sweep_forever(), name="reply-leases-sweep"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def sweep(self) -> int:
        """End the replies whose instance died; how many there were."""
        async with asyncio.timeout(WRITE_TIMEOUT):
            return await self._messages.interrupt_abandoned(utc_now(), self._lease)

    async def renew(self) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await self._messages.renew_leases(self._runner.running_ids(), utc_now() + self._lease)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            await self._guarded(self.renew(), "renewing reply leases")

    async def _sweep_forever(self) -> None:
        while True:
            half = self._lease.total_seconds() / 2
            await asyncio.sleep(half * (0.75 + random.random() / 2))  # noqa: S311 - spread only
            ended = await self._guarded(self.sweep(), "sweeping abandoned replies")
            if ended:
                logger.warning("marked %d replies of a stopped instance INTERRUPTED", ended)

    async def _guarded(self, work: Coroutine[Any, Any, T], what: str) -> T | None:
        """Run one renewal or sweep; a failure is logged once until one works again (the
        database is down: the next round tries again)."""
        try:
            result = await work
        except Exception:
            if not self._failing:
                self._failing = True
                logger.warning("%s failed; retrying every round", what, exc_info=True)
            return None
        self._failing = False
        return result
