"""With several instances: each reply in progress holds a lease in MongoDB (`lease_until` on its
message), renewed by the instance generating it every third of `GQL_CHAT_REPLY_LEASE`. Every
instance sweeps, every half lease, for unfinished replies whose lease ran out: their instance
died (`kill -9`, a lost machine), so they become INTERRUPTED with the text saved so far, and
their followers anywhere get `done`. The deltas it streamed through Redis after its last save
(followers elsewhere already show them) are read back from the reply's stream and saved first,
so the INTERRUPTED text is what those followers saw, and the stream gets its end entry. Nothing
waits for the dead process to start again, and start-up no longer ends every unfinished reply,
only those whose lease ran out, so a restart never cuts a reply another live instance is
generating.

One instance alone (no Redis) keeps the simpler rule: at start-up, every unfinished reply was
its own, and ends then."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.messages import appended_ends, split_texts
from gql_chat.services.generation import WRITE_TIMEOUT, GenerationRunner
from gql_chat.services.tasks import end_tasks
from gql_chat.store.messages import MessageStore
from gql_chat.streams.reply_streams import RedisReplyStreams

logger = logging.getLogger(__name__)

RECOVER_AT_MOST = 100
"""Abandoned replies one sweep ends one by one, through their streams (the rest, if an instance
died with more, end at once with their saved text; their followers notice within seconds)."""
RECOVERY_TIMEOUT = WRITE_TIMEOUT / 2
"""The longest one sweep spends ending replies one by one before ending what is left at once."""

T = TypeVar("T")


class ReplyLeases:
    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        runner: GenerationRunner,
        streams: RedisReplyStreams | None = None,
    ) -> None:
        self._lease = timedelta(seconds=settings.reply_lease)
        self._messages = messages
        self._runner = runner
        self._streams = streams
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="reply-leases-renew"),
            asyncio.create_task(self._sweep_forever(), name="reply-leases-sweep"),
        ]

    async def close(self) -> None:
        await end_tasks(self._tasks, "reply lease tasks")

    async def sweep(self) -> int:
        """End the replies whose instance died; how many there were."""
        now = utc_now()
        ended = 0
        if self._streams is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECOVERY_TIMEOUT):
                    ended = await self._end_in_streams(self._streams, now)
        async with asyncio.timeout(WRITE_TIMEOUT):
            return ended + await self._messages.interrupt_abandoned(now, self._lease)

    async def _end_in_streams(self, streams: RedisReplyStreams, now: datetime) -> int:
        """End abandoned replies one by one: each with the unsaved deltas in its stream saved,
        then an end entry in that stream (its followers elsewhere re-read it at once); how
        many."""
        ended = 0
        abandoned = await self._messages.abandoned(now, self._lease, RECOVER_AT_MOST)
        for message_id, seq_ends in abandoned:
            saved = len(seq_ends)
            deltas = await streams.unsaved_deltas(message_id, saved)
            appended = (saved, split_texts(deltas), appended_ends(seq_ends, deltas))
            if await self._messages.interrupt_abandoned_with(
                message_id, now, self._lease, appended
            ):
                streams.ended(message_id, saved + len(deltas))
                ended += 1
        return ended

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
