"""Live reply deltas between instances: a Redis Stream per reply (`GQL_CHAT_REDIS_URL`).

The instance generating a reply mirrors each delta into `gql_chat:<db>:reply:<message id>`
(`XADD` with the entry id `<seq>-0` and the text in `t`, or in `r` for reasoning), then one end
entry (`e`, id one past the last delta). A follower on another instance reads it with
`XREAD BLOCK` from the id of the last seq it has: a delta reaches it as soon as Redis has it,
not at the next read of MongoDB, and a late follower starts where it is, skipping nothing.

MongoDB stays the record: the stream is a fast path a follower may lose (Redis restarted, the
stream trimmed, entries dropped while Redis was down), and the follower then fills the gap from
the stored message, which it re-reads every few seconds anyway and half a second after it sees a
gap; deltas are delivered by `seq`, in order, so none is missed or repeated.

Writes never block the generation: they queue (bounded) and one task sends them in pipelined
batches. Each stream is trimmed to about `MAX_ENTRIES` and expires `KEEP_AFTER_END` seconds after
its end; its expiry is set with the first delta and every `EXPIRE_EVERY` deltas (not with every
write: that doubled Redis's commands per delta), long enough for the longest reply. Reads use a
separate pool of at most `MAX_READERS` connections (a blocking read holds one); when it is
exhausted or Redis does not answer, followers read MongoDB only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gql_chat.domain.messages import Delta
from gql_chat.streams.redis_clients import OPERATION_TIMEOUT, redis_client

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 100_000
"""Deltas waiting to be written; beyond it new ones are dropped (followers fill from MongoDB)."""
BATCH = 500
"""Entries written per pipeline round trip."""
MAX_ENTRIES = 20_000
"""Entries one stream keeps (approximately: `MAXLEN ~`); a longer reply's start is read from
MongoDB."""
KEEP_AFTER_END = 300
"""Seconds a stream lives after its end (a follower arriving later replays MongoDB)."""
EXPIRE_EVERY = 50
"""Deltas between two settings of a running reply's stream expiry (in case its end is never
written: its instance died, or Redis lost the stream and then the end)."""
MAX_READERS = 1_000
"""Blocking reads at once per instance (each holds a Redis connection)."""
READ_COUNT = 1_000
"""Entries one read returns at most."""


Fields = dict[Any, Any]
"""A stream entry's fields: `t` for a delta, `e` for the end."""
END: Fields = {"e": 1}


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry to write, and the stream's expiry to set after it (seconds), if any."""

    key: str
    entry_id: str
    fields: Fields
    expiry: int | None
    restart: bool = False
    """Delete the stream first: a continued reply's entries go on from its last `seq`, past
    the id of its old end."""


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The reply ended where it runs: its final state is in MongoDB."""


StreamEntry = Delta | StreamEnd


@dataclass(slots=True)
class StreamPosition:
    """Where one follower is in one reply's stream: the id of the last entry it read."""

    message_id: ObjectId
    last_id: str

    @classmethod
    def after(cls, message_id: ObjectId, seq: int) -> StreamPosition:
        return cls(message_id, f"{seq}-0")

    def skip_to(self, seq: int) -> None:
        """Read on after `seq` (MongoDB gave the deltas up to it)."""
        if int(self.last_id.split("-", 1)[0]) < seq:
            self.last_id = f"{seq}-0"


class RedisReplyStreams:
    def __init__(self, url: str, database_name: str, longest_reply: float) -> None:
        self._running_expiry = int(longest_reply) + KEEP_AFTER_END
        self._prefix = f"gql_chat:{database_name}:reply:"
        self._writer: Redis = redis_client(url)
        # A blocking read waits longer than any socket timeout: `read` bounds each one.
        self._readers = redis_client(url, socket_timeout=None, max_connections=MAX_READERS)
        self._outbox: asyncio.Queue[_Entry] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._restarting: set[ObjectId] = set()
        self._writing = True
        self._reading = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="reply-streams-write")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for client in (self._writer, self._readers):
            with contextlib.suppress(Exception):
                await client.aclose()

    # --- the generating instance --------------------------------------------------------

    def delta(self, message_id: ObjectId, delta: Delta) -> None:
        restart = self._take_restart(message_id)
        expiry = self._running_expiry if restart or delta.seq % EXPIRE_EVERY == 1 else None
        fields = {"r" if delta.reasoning else "t": delta.text}
        self._queue(_Entry(self._key(message_id), f"{delta.seq}-0", fields, expiry, restart))

    def ended(self, message_id: ObjectId, deltas: int) -> None:
        restart = self._take_restart(message_id)
        self._queue(_Entry(self._key(message_id), f"{deltas + 1}-0", END, KEEP_AFTER_END, restart))

    def restarted(self, message_id: ObjectId) -> None:
        """The reply's next entry replaces its stream (`_Entry.restart`)."""
        self._restarting.add(message_id)

    def _take_restart(self, message_id: ObjectId) -> bool:
        if message_id in self._restarting:
            self._restarting.discard(message_id)
            return True
        return False

    def _queue(self, entry: _Entry) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # followers elsewhere fill from MongoDB
            self._outbox.put_nowait(entry)

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            await self._write(batch)

    async def _write(self, batch: Sequence[_Entry]) -> None:
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                async with self._writer.pipeline(transaction=False) as pipe:
                    for entry in batch:
                        if entry.restart:
                            pipe.delete(entry.key)
                        pipe.xadd(
                            entry.key,
                            entry.fields,
                            id=entry.entry_id,
                            maxlen=MAX_ENTRIES,
                            approximate=True,
                        )
                        if entry.expiry is not None:
                            pipe.expire(entry.key, entry.expiry)
                    # An entry Redis refuses (its id was written before: a retried batch) is
                    # skipped; the others stand.
                    await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError):
            self._writing = _changed(self._writing, False, "written to")
            return
        self._writing = _changed(self._writing, True, "written to")

    async def unsaved_deltas(self, message_id: ObjectId, saved: int) -> list[Delta]:
        """Deltas `saved + 1`, `saved + 2`, ... as far as the stream holds them without a gap:
        what an instance that died streamed to followers but never saved. Empty when Redis
        does not answer."""
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                result: Any = await self._writer.xrange(
                    self._key(message_id), min=f"{saved + 1}-0", count=MAX_ENTRIES
                )
        except (RedisError, OSError, TimeoutError):
            return []
        deltas: list[Delta] = []
        for entry_id, fields in result:
            entry = _entry(entry_id.decode(), fields)
            if not isinstance(entry, Delta) or entry.seq != saved + len(deltas) + 1:
                break
            deltas.append(entry)
        return deltas

    # --- a follower on another instance -------------------------------------------------

    async def read(self, position: StreamPosition, block: float) -> list[StreamEntry] | None:
        """The entries after `position` (advancing it), waiting at most `block` seconds for
        one; None when Redis cannot be read now (the caller reads MongoDB)."""
        key = self._key(position.message_id)
        try:
            async with asyncio.timeout(block + OPERATION_TIMEOUT):
                result: Any = await self._readers.xread(
                    {key: position.last_id}, count=READ_COUNT, block=max(1, int(block * 1000))
                )
        except (RedisError, OSError, TimeoutError):
            self._reading = _changed(self._reading, False, "read from")
            return None
        self._reading = _changed(self._reading, True, "read from")
        entries: list[StreamEntry] = []
        for _, stream_entries in result or ():
            for entry_id, fields in stream_entries:
                position.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                entry = _entry(position.last_id, fields)
                if entry is not None:
                    entries.append(entry)
        return entries

    def _key(self, message_id: ObjectId) -> str:
        return f"{self._prefix}{message_id}"


def _entry(entry_id: str, fields: dict[bytes, bytes]) -> StreamEntry | None:
    """An entry as written by `RedisReplyStreams`; None for anything else (ignored)."""
    if b"e" in fields:
        return StreamEnd()
    reasoning = b"r" in fields
    try:
        text = fields[b"r" if reasoning else b"t"].decode()
        return Delta(int(entry_id.split("-", 1)[0]), text, reasoning) if text else None
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def _changed(was_working: bool, works: bool, how: str) -> bool:
    """Log an outage once when it starts and once when it ends."""
    if was_working and not works:
        logger.warning(
            "reply deltas cannot be %s Redis: followers on other instances read MongoDB", how
        )
    elif works and not was_working:
        logger.warning("reply deltas are %s Redis again", how)
    return works
