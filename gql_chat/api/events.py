"""`userEvents`: live changes to anything the signed-in user owns."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import strawberry
from bson import ObjectId

from gql_chat.api.context import Info
from gql_chat.api.conversations import ConversationType
from gql_chat.api.folders import FolderType
from gql_chat.api.llm_configs import LlmConfigType
from gql_chat.api.messages import MessageType
from gql_chat.errors import NotFound
from gql_chat.streams.user_events import UserEvent as UserEventRecord
from gql_chat.streams.user_events import UserEventKind as UserEventKindValue

T = TypeVar("T")
UserEventKind = strawberry.enum(UserEventKindValue, name="UserEventKind")


def _id(value: ObjectId | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.type(
    description=(
        "A change to something the user owns. The changed objects are resolved when the event "
        "is sent (select only what you need: each costs a read), and null when deleted or not "
        "concerned, so a client can update its cache without a refetch."
    )
)
class UserEvent:
    kind: UserEventKind  # type: ignore[valid-type]
    conversation_id: strawberry.ID | None
    message_id: strawberry.ID | None
    folder_id: strawberry.ID | None
    llm_config_id: strawberry.ID | None
    at: datetime
    record: strawberry.Private[UserEventRecord]

    @classmethod
    def of(cls, event: UserEventRecord) -> UserEvent:
        return cls(
            kind=event.kind,
            conversation_id=_id(event.conversation_id),
            message_id=_id(event.message_id),
            folder_id=_id(event.folder_id),
            llm_config_id=_id(event.llm_config_id),
            at=event.at,
            record=event,
        )

    @strawberry.field(description="The conversation as it is now; null when deleted.")
    async def conversation(self, info: Info) -> ConversationType | None:
        found = await _current(
            info, info.context.services.conversations.get, self.record.conversation_id
        )
        return ConversationType.from_record(found) if found else None

    @strawberry.field(description="The message as it is now; null when deleted.")
    async def message(self, info: Info) -> MessageType | None:
        found = await _current(info, info.context.services.messages.get, self.record.message_id)
        return MessageType.from_record(found) if found else None

    @strawberry.field(description="The folder as it is now; null when deleted.")
    async def folder(self, info: Info) -> FolderType | None:
        found = await _current(info, info.context.services.folders.get, self.record.folder_id)
        return FolderType.from_record(found) if found else None

    @strawberry.field(description="The preset as it is now; null when deleted.")
    async def llm_config(self, info: Info) -> LlmConfigType | None:
        found = await _current(info, info.context.services.presets.get, self.record.llm_config_id)
        return LlmConfigType.from_record(found) if found else None


async def _current(
    info: Info, get: Callable[[ObjectId, ObjectId], Awaitable[T]], object_id: ObjectId | None
) -> T | None:
    """The user's object as it is now, by a service's `get`; None when the event names none or
    it is gone (NOT_FOUND)."""
    if object_id is None:
        return None
    try:
        return await get(await info.context.owner_id(), object_id)
    except NotFound:
        return None


@strawberry.type
class EventSubscription:
    @strawberry.subscription(
        description="Changes to anything the user owns, from any device or session."
    )
    async def user_events(self, info: Info) -> AsyncGenerator[UserEvent, None]:
        owner_id = await info.context.owner_id()
        async for event in info.context.services.events.subscribe(owner_id):
            yield UserEvent.of(event)
