"""What this instance tells the other app instances, and what it hears from them, when several
share MongoDB and Redis (`GQL_CHAT_REDIS_URL`): user events, and stops of replies that run
elsewhere (`stopGeneration`, deleting or disabling a user, deleting conversations).

Without Redis there is no cluster: every method here does nothing and the instance is the whole
service, exactly as before. With it, messages go through `streams/redis_link.py`, which never
blocks a request and carries on alone through a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageStatus
from gql_chat.services.generation import GenerationRunner
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.tasks import end_tasks
from gql_chat.streams.redis_link import RedisLink
from gql_chat.streams.reply_streams import RedisReplyStreams
from gql_chat.streams.user_events import (
    UserEvent,
    UserEventBus,
    event_from_message,
    event_to_message,
)

logger = logging.getLogger(__name__)

STOPPABLE = {MessageStatus.STOPPED, MessageStatus.INTERRUPTED}


class Cluster:
    def __init__(self, settings: Settings) -> None:
        prefix = f"gql_chat:{settings.mongodb_db}"
        self._events_channel = f"{prefix}:events"
        self._control_channel = f"{prefix}:control"
        self._link = (
            RedisLink(
                settings.redis_url.get_secret_value(),
                {
                    self._events_channel: self._heard_event,
                    self._control_channel: self._heard_control,
                },
            )
            if settings.redis_url is not None
            else None
        )
        self.reply_streams = (
            RedisReplyStreams(
                settings.redis_url.get_secret_value(),
                settings.mongodb_db,
                longest_reply=settings.max_reply_seconds,
            )
            if settings.redis_url is not None
            else None
        )
        """Live reply deltas for followers on other instances."""
        self._events: UserEventBus | None = None
        self._runner: GenerationRunner | None = None
        self._sign_ins: SignInChanges | None = None
        self._stopping: set[asyncio.Task[Any]] = set()

    @property
    def shared(self) -> bool:
        """Whether other instances may exist (Redis is configured)."""
        return self._link is not None

    def attach(
        self, events: UserEventBus, runner: GenerationRunner, sign_ins: SignInChanges
    ) -> None:
        """What heard messages act on (built after the cluster, which they relay through)."""
        self._events = events
        self._runner = runner
        self._sign_ins = sign_ins

    def start(self) -> None:
        if self._link is not None:
            self._link.start()
        if self.reply_streams is not None:
            self.reply_streams.start()

    async def close(self) -> None:
        await end_tasks(self._stopping, "stop signals")
        if self._link is not None:
            await self._link.close()
        if self.reply_streams is not None:
            await self.reply_streams.close()

    async def redis_available(self) -> bool | None:
        """None without Redis; else whether it answers a ping now."""
        return None if self._link is None else await self._link.ping()

    # --- telling the others ---------------------------------------------------------------

    def relay_event(self, owner_id: ObjectId, event: UserEvent) -> None:
        if self._link is not None:
            self._link.publish(self._events_channel, event_to_message(owner_id, event))

    def relay_sign_ins_ended(self, user_id: ObjectId) -> None:
        self._control({"signed_out": str(user_id)})

    def stop_elsewhere(self, message_id: ObjectId, status: MessageStatus) -> None:
        self._control({"stop": str(message_id), "status": status.value})

    @contextlib.asynccontextmanager
    async def removing_owner(self, owner_id: ObjectId) -> AsyncIterator[None]:
        """The runner's `removing_owner`, and the owner's replies on other instances stopped."""
        assert self._runner is not None, "attach() first"
        self._control({"stop_owner": str(owner_id)})
        async with self._runner.removing_owner(owner_id):
            yield

    @contextlib.asynccontextmanager
    async def removing_conversations(
        self, owner_id: ObjectId, conversation_ids: Collection[ObjectId]
    ) -> AsyncIterator[None]:
        """The runner's `removing_conversations`, and their replies elsewhere stopped."""
        assert self._runner is not None, "attach() first"
        self._control(
            {"stop_owner": str(owner_id), "conversations": [str(c) for c in conversation_ids]}
        )
        async with self._runner.removing_conversations(owner_id, conversation_ids):
            yield

    def _control(self, message: dict[str, Any]) -> None:
        if self._link is not None:
            self._link.publish(self._control_channel, message)

    # --- hearing them -------------------------------------------------------------------

    def _heard_event(self, message: dict[str, Any]) -> None:
        decoded = event_from_message(message)
        if decoded is not None and self._events is not None:
            self._events.deliver(*decoded)

    def _heard_control(self, message: dict[str, Any]) -> None:
        runner = self._runner
        if runner is None:
            return
        try:
            if "stop" in message:
                status = MessageStatus(str(message.get("status")))
                if status in STOPPABLE:
                    self._in_background(runner.stop(ObjectId(message["stop"]), status))
            elif "signed_out" in message:
                if self._sign_ins is not None:
                    self._sign_ins.heard(ObjectId(message["signed_out"]))
            elif "stop_owner" in message:
                owner_id = ObjectId(message["stop_owner"])
                conversations = message.get("conversations")
                if conversations is None:
                    self._in_background(runner.stop_owner(owner_id))
                else:
                    ids = {ObjectId(c) for c in conversations}
                    self._in_background(runner.stop_conversations(owner_id, ids))
        except (InvalidId, TypeError, ValueError):
            logger.warning("ignored a malformed control message from another instance")

    def _in_background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
