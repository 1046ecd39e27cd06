"""Following a reply: replay after the client's last `seq`, then live deltas, then one `done`
event, with no gap and no repeat, whether this process generates the reply or another does."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.messages import MessageRecord, MessageStatus
from gql_chat.errors import RateLimited
from gql_chat.services.generation import STOP_TIMEOUT
from gql_chat.services.messages import MessageService
from gql_chat.streams.replies import Pacer, ReplyRegistry

STORE_POLL_INTERVAL = 0.5
"""How often a reply generated elsewhere is re-read while it is unfinished."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    message_id: ObjectId
    seq: int
    delta: str
    status: MessageStatus
    done: bool = False
    message: MessageRecord | None = None


class ReplyFollower:
    def __init__(
        self,
        settings: Settings,
        messages: MessageService,
        registry: ReplyRegistry[MessageRecord],
    ) -> None:
        self._settings = settings
        self._messages = messages
        self._registry = registry
        self._following: Counter[ObjectId] = Counter()

    async def stream(
        self, owner_id: ObjectId, message_id: str, after_seq: int
    ) -> AsyncIterator[StreamEvent]:
        """Replay after `after_seq`, then follow live, then one `done` event. At most
        `max_followers_per_user` at once per user: each follower of a fast reply runs for up to
        a share of the loop (`Pacer`), and one user must not take all of it (100 followers of
        one reply, within the websocket limits, held every other request for a second)."""
        limit = self._settings.max_followers_per_user
        if self._following[owner_id] >= limit:
            raise RateLimited(
                retry_after=1, message=f"At most {limit} replies can be followed at once."
            )
        self._following[owner_id] += 1
        try:
            async for event in self._stream(owner_id, message_id, after_seq):
                yield event
        finally:
            self._following[owner_id] -= 1
            if self._following[owner_id] <= 0:
                del self._following[owner_id]

    async def _stream(
        self, owner_id: ObjectId, message_id: str, after_seq: int
    ) -> AsyncIterator[StreamEvent]:
        """A reply generated here is followed from its live buffer, which holds every delta
        since it started (so replay and follow cannot race). Otherwise the stored message is
        replayed and, while unfinished (another instance owns it), re-read until it is final."""
        message = await self._messages.get(owner_id, message_id)
        last_seq = max(after_seq, 0)
        live = self._registry.get(message.id)
        if live is not None:
            async for delta in live.follow(last_seq):  # paces itself
                last_seq = delta.seq
                yield StreamEvent(message.id, delta.seq, delta.text, MessageStatus.STREAMING)
            if live.final is not None:
                yield _done(live.final)
                return
            message = await self._messages.get(owner_id, message.id)
        with Pacer() as pacer:  # the replay from the store
            while True:
                for seq, text in message.deltas_after(last_seq):
                    last_seq = seq
                    yield StreamEvent(message.id, seq, text, message.status)
                    await pacer.pace()
                if message.status.is_final:
                    yield _done(message)
                    return
                pacer.idle()
                if utc_now() > self._orphaned_after(message):
                    await self._messages.interrupt(message.id)
                else:
                    await asyncio.sleep(STORE_POLL_INTERVAL)
                message = await self._messages.get(owner_id, message.id)
                pacer.reset()

    def _orphaned_after(self, message: MessageRecord) -> datetime:
        """No reply runs longer than `max_reply_seconds` plus its final write: one unfinished
        after that lost its process, and followers must not wait for it forever."""
        bound = self._settings.max_reply_seconds + STOP_TIMEOUT + STORE_POLL_INTERVAL
        return message.created_at + timedelta(seconds=bound)


def _done(message: MessageRecord) -> StreamEvent:
    return StreamEvent(message.id, 0, "", message.status, done=True, message=message)
