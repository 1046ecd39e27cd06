"""`userEvents`: live changes to anything the signed-in user owns."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from bson import ObjectId

from gql_chat.api.context import Info
from gql_chat.streams.user_events import UserEvent as UserEventRecord
from gql_chat.streams.user_events import UserEventKind as UserEventKindValue

UserEventKind = strawberry.enum(UserEventKindValue, name="UserEventKind")


def _id(value: ObjectId | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.type
class UserEvent:
    kind: UserEventKind  # type: ignore[valid-type]
    conversation_id: strawberry.ID | None
    message_id: strawberry.ID | None
    folder_id: strawberry.ID | None
    llm_config_id: strawberry.ID | None
    at: datetime

    @classmethod
    def of(cls, event: UserEventRecord) -> UserEvent:
        return cls(
            kind=event.kind,
            conversation_id=_id(event.conversation_id),
            message_id=_id(event.message_id),
            folder_id=_id(event.folder_id),
            llm_config_id=_id(event.llm_config_id),
            at=event.at,
        )


@strawberry.type
class EventSubscription:
    @strawberry.subscription(
        description="Changes to anything the user owns, from any device or session."
    )
    async def user_events(self, info: Info) -> AsyncGenerator[UserEvent, None]:
        owner_id = await info.context.owner_id()
        async for event in info.context.services.events.subscribe(owner_id):
            yield UserEvent.of(event)
