"""Following a reply: replay after the client's last `seq`, then live deltas, then one `done`
event, with no gap and no repeat, whether this process generates the reply or another does."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.messages import Delta, MessageRecord, MessageStatus
from gql_chat.errors import RateLimited
from gql_chat.services.generation import STOP_TIMEOUT
from gql_chat.services.messages import MessageService
from gql_chat.streams.replies import Pacer, ReplyRegistry
from gql_chat.streams.reply_streams import (
    RedisReplyStreams,
    StreamEnd,
    StreamPosition,
)

STORE_POLL_INTERVAL = 0.5
"""How often a reply generated elsewhere is re-read while it is unfinished (without Redis, or
with a gap in its stream)."""
STREAM_RECHECK_INTERVAL = 2.0
"""How often it is re-read while its Redis stream delivers every delta: only to notice an end
the stream does not carry (the sweep of a dead instance's replies writes one, but Redis may
lose it). Every 0.5 s, each follower on another instance read the whole message from MongoDB
twice a second for nothing."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    message_id: ObjectId
    seq: int
    delta: str
    status: MessageStatus
    done: bool = False
    message: MessageRecord | None = None
    reasoning_delta: str = ""

    @classmethod
    def of(cls, message_id: ObjectId, delta: Delta, status: MessageStatus) -> StreamEvent:
        """A delta's event: its text in `delta`, or in `reasoning_delta` for reasoning."""
        if delta.reasoning:
            return cls(message_id, delta.seq, "", status, reasoning_delta=delta.text)
        return cls(message_id, delta.seq, delta.text, status)


class ReplyFollower:
    def __init__(
        self,
        settings: Settings,
        messages: MessageService,
        registry: ReplyRegistry[MessageRecord],
        streams: RedisReplyStreams | None = None,
    ) -> None:
        self._settings = settings
        self._messages = messages
        self._registry = registry
        self._streams = streams
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
        replayed and, while unfinished (another instance generates it), followed from that
        instance's Redis stream and re-read every `STORE_POLL_INTERVAL` until it is final (the
        re-read fills any gap in the stream, and without Redis it is the only source)."""
        message = await self._messages.get(owner_id, message_id)
        last_seq = max(after_seq, 0)
        live = self._registry.get(message.id)
        if live is not None:
            async for delta in live.follow(last_seq):  # paces itself
                last_seq = delta.seq
                yield StreamEvent.of(message.id, delta, MessageStatus.STREAMING)
            if live.final is not None:
                yield _done(live.final)
                return
            message = await self._messages.get(owner_id, message.id)
        elsewhere = _Elsewhere(StreamPosition.after(message.id, last_seq))
        with Pacer() as pacer:  # the replay from the store
            while True:
                for delta in message.deltas_after(last_seq):
                    last_seq = delta.seq
                    yield StreamEvent.of(message.id, delta, message.status)
                    await pacer.pace()
                if message.status.is_final:
                    yield _done(message)
                    return
                if utc_now() > self._orphaned_after(message):
                    await self._messages.interrupt(message.id)
                elif self._streams is None:
                    pacer.idle()
                    await asyncio.sleep(STORE_POLL_INTERVAL)
                else:
                    async for delta in self._from_stream(self._streams, elsewhere, last_seq):
                        last_seq = delta.seq
                        yield StreamEvent.of(message.id, delta, MessageStatus.STREAMING)
                        await pacer.pace()
                message = await self._messages.get(owner_id, message.id)
                pacer.reset()

    async def _from_stream(
        self, streams: RedisReplyStreams, elsewhere: _Elsewhere, last_seq: int
    ) -> AsyncIterator[Delta]:
        """The deltas after `last_seq` from the generating instance's stream, in order, for one
        `STREAM_RECHECK_INTERVAL` (then the caller re-reads MongoDB); at the stream's end, at
        once. Deltas past a gap wait in `pending` until MongoDB has filled it, at most
        `STORE_POLL_INTERVAL` later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_RECHECK_INTERVAL
        for seq in [seq for seq in elsewhere.pending if seq <= last_seq]:
            del elsewhere.pending[seq]  # MongoDB gave them first
        elsewhere.position.skip_to(last_seq)
        if elsewhere.ended:  # the end was read: only MongoDB has more to say
            await asyncio.sleep(STORE_POLL_INTERVAL)
            return
        while True:
            while (delta := elsewhere.pending.pop(last_seq + 1, None)) is not None:
                last_seq += 1
                yield delta
            if elsewhere.pending:  # a gap (entries lost or trimmed): MongoDB fills it
                deadline = min(deadline, loop.time() + STORE_POLL_INTERVAL)
            left = deadline - loop.time()
            if left <= 0 or elsewhere.ended:
                return
            entries = await streams.read(elsewhere.position, left)
            if entries is None:  # Redis cannot be read now: MongoDB only
                await asyncio.sleep(max(0.0, min(deadline - loop.time(), STORE_POLL_INTERVAL)))
                return
            for entry in entries:
                if isinstance(entry, StreamEnd):
                    elsewhere.ended = True
                elif entry.seq > last_seq:
                    elsewhere.pending[entry.seq] = entry

    def _orphaned_after(self, message: MessageRecord) -> datetime:
        """No reply runs longer than `max_reply_seconds` plus its final write: one unfinished
        after that lost its process, and followers must not wait for it forever."""
        bound = self._settings.max_reply_seconds + STOP_TIMEOUT + STORE_POLL_INTERVAL
        return message.generating_since + timedelta(seconds=bound)


@dataclass(slots=True)
class _Elsewhere:
    """A follower's reading of a reply generated on another instance: its place in the
    reply's Redis stream, and the deltas read there ahead of a gap (MongoDB fills it)."""

    position: StreamPosition
    pending: dict[int, Delta] = field(default_factory=dict)
    ended: bool = False


def _done(message: MessageRecord) -> StreamEvent:
    return StreamEvent(message.id, 0, "", message.status, done=True, message=message)
