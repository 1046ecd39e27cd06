"""Per-user change events for every device and tab of that user.

In-process fan-out (`publish`, `subscribe`); with several instances, each published event also
goes to a relay (Redis pub/sub, `services/cluster.py`), and the other instances `deliver` it to
their own subscribers. A subscriber that falls far behind loses its oldest
events rather than growing without bound; clients re-read what they care about anyway."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from gql_chat.domain.clock import utc_now
from gql_chat.platform.lean_asyncio import LeanQueue

logger = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 1000


class UserEventKind(StrEnum):
    CONVERSATION_CREATED = "CONVERSATION_CREATED"
    CONVERSATION_UPDATED = "CONVERSATION_UPDATED"
    CONVERSATION_DELETED = "CONVERSATION_DELETED"
    MESSAGE_CREATED = "MESSAGE_CREATED"
    MESSAGE_COMPLETED = "MESSAGE_COMPLETED"
    MESSAGE_UPDATED = "MESSAGE_UPDATED"
    MESSAGE_DELETED = "MESSAGE_DELETED"
    FOLDER_CREATED = "FOLDER_CREATED"
    FOLDER_UPDATED = "FOLDER_UPDATED"
    FOLDER_DELETED = "FOLDER_DELETED"
    LLM_CONFIG_CHANGED = "LLM_CONFIG_CHANGED"
    PROFILE_UPDATED = "PROFILE_UPDATED"


ID_FIELDS = ("conversation_id", "message_id", "folder_id", "llm_config_id")


@dataclass(frozen=True, slots=True)
class UserEvent:
    kind: UserEventKind
    conversation_id: ObjectId | None = None
    message_id: ObjectId | None = None
    folder_id: ObjectId | None = None
    llm_config_id: ObjectId | None = None
    at: datetime = field(default_factory=utc_now)


EventRelay = Callable[[ObjectId, UserEvent], None]
"""Where a published event also goes: to the other app instances (`services/cluster.py`)."""


def event_to_message(owner_id: ObjectId, event: UserEvent) -> dict[str, Any]:
    return {
        "owner": str(owner_id),
        "kind": event.kind.value,
        "at": event.at.isoformat(),
        **{name: str(value) for name in ID_FIELDS if (value := getattr(event, name)) is not None},
    }


def event_from_message(message: dict[str, Any]) -> tuple[ObjectId, UserEvent] | None:
    """The owner and the event another instance published; None when it is not one."""
    try:
        ids = {name: ObjectId(message[name]) for name in ID_FIELDS if message.get(name)}
        event = UserEvent(
            UserEventKind(message["kind"]), at=datetime.fromisoformat(message["at"]), **ids
        )
        return ObjectId(message["owner"]), event
    except (KeyError, TypeError, ValueError, InvalidId):
        return None


class Inbox(LeanQueue[UserEvent]):
    """One subscriber's undelivered events. Most subscribers sit idle (a tab open on
    `userEvents`) with nothing waiting: the buffer exists only while events wait, and a waiting
    reader is one future, where an `asyncio.Queue` carried four deques and an Event (about
    3 KiB per idle subscription)."""

    __slots__ = ()

    def full(self) -> bool:
        return self.qsize() >= SUBSCRIBER_BUFFER

    def drop_oldest(self) -> None:
        if self._items:
            self._items.popleft()


class UserEventBus:
    def __init__(self, relay: EventRelay | None = None) -> None:
        self._relay = relay
        self._subscribers: dict[ObjectId, set[Inbox]] = defaultdict(set)
        self._lagging: set[Inbox] = set()
        """Subscribers that dropped events since they last caught up (logged once)."""

    def subscriber_count(self, owner_id: ObjectId) -> int:
        return len(self._subscribers.get(owner_id, ()))

    def publish(self, owner_id: ObjectId, event: UserEvent) -> None:
        """To this instance's subscribers of the owner, and to the other instances'."""
        self.deliver(owner_id, event)
        if self._relay is not None:
            self._relay(owner_id, event)

    def deliver(self, owner_id: ObjectId, event: UserEvent) -> None:
        """To this instance's subscribers of the owner only."""
        for inbox in self._subscribers.get(owner_id, ()):
            if inbox.full():
                inbox.drop_oldest()
                if inbox not in self._lagging:
                    # Once per subscriber until it catches up: a subscriber that stopped
                    # reading would otherwise log a line per event, per subscriber.
                    self._lagging.add(inbox)
                    logger.warning(
                        "a userEvents subscriber fell behind; dropping its oldest events "
                        "until it catches up"
                    )
            inbox.put_nowait(event)

    async def subscribe(self, owner_id: ObjectId) -> AsyncIterator[UserEvent]:
        inbox = Inbox()
        self._subscribers[owner_id].add(inbox)
        try:
            while True:
                event = await inbox.get()
                if inbox.empty():
                    self._lagging.discard(inbox)
                yield event
        finally:
            self._lagging.discard(inbox)
            subscribers = self._subscribers.get(owner_id)
            if subscribers is not None:
                subscribers.discard(inbox)
                if not subscribers:
                    del self._subscribers[owner_id]
