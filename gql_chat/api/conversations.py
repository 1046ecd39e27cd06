"""Conversations: `conversation`, `conversations`, and their mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId

from gql_chat.api.folders import FolderType
from gql_chat.api.llm_configs import LlmConfigType
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.services.threads import path_to
from gql_chat.store.conversations import ConversationRecord
from gql_chat.store.pagination import Page

if TYPE_CHECKING:
    from gql_chat.api.messages import MessageConnection, Usage

MessageConnectionRef = Annotated["MessageConnection", strawberry.lazy("gql_chat.api.messages")]
UsageRef = Annotated["Usage", strawberry.lazy("gql_chat.api.messages")]


@strawberry.type(name="Conversation")
class ConversationType:
    id: strawberry.ID
    title: str
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    record: strawberry.Private[ConversationRecord]

    @classmethod
    def from_record(cls, conversation: ConversationRecord) -> ConversationType:
        return cls(
            id=strawberry.ID(str(conversation.id)),
            title=conversation.title,
            pinned=conversation.pinned,
            archived=conversation.archived,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            last_message_at=conversation.last_message_at,
            record=conversation,
        )

    @strawberry.field(description="Messages on the active branch.")
    async def message_count(self, info: strawberry.Info) -> int:
        return len(await self._active_path(info))

    @strawberry.field(description="Sum over every assistant message of the conversation.")
    async def usage(self, info: strawberry.Info) -> UsageRef:
        from gql_chat.api.messages import Usage

        return Usage.of(await (await info.context.loaders()).usage.load(self.record.id))

    @strawberry.field(
        description=(
            "The active branch, oldest first; `last`/`before` pages backwards from the newest."
        )
    )
    async def messages(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnectionRef:
        from gql_chat.api.messages import MessageConnection

        page = await info.context.services.chat.message_page(
            await info.context.owner_id(),
            await self._active_path(info),
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return MessageConnection.of(page)

    async def _active_path(self, info: strawberry.Info) -> list[ObjectId]:
        nodes = await (await info.context.loaders()).message_nodes.load(self.record.id)
        return path_to(nodes, self.record.active_leaf_id)

    @strawberry.field
    async def folder(self, info: strawberry.Info) -> FolderType | None:
        if self.record.folder_id is None:
            return None
        folder = await (await info.context.loaders()).folder.load(self.record.folder_id)
        return FolderType.from_record(folder) if folder else None

    @strawberry.field
    async def llm_config(self, info: strawberry.Info) -> LlmConfigType | None:
        if self.record.llm_config_id is None:
            return None
        config = await (await info.context.loaders()).llm_config.load(self.record.llm_config_id)
        return LlmConfigType.from_record(config) if config else None


@strawberry.type
class ConversationEdge:
    cursor: str
    node: ConversationType


@strawberry.type
class ConversationConnection:
    edges: list[ConversationEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[ConversationRecord]) -> ConversationConnection:
        return cls(
            edges=[
                ConversationEdge(cursor=cursor, node=ConversationType.from_record(record))
                for cursor, record in page.items
            ],
            page_info=PageInfo.of(page),  # type: ignore[arg-type]
            total_count=page.total_count,
        )


@strawberry.input
class CreateConversationInput:
    title: str | None = None
    folder_id: strawberry.ID | None = None
    llm_config_id: strawberry.ID | None = None


@strawberry.input
class UpdateConversationInput:
    title: str | None = None
    folder_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description="Explicit null moves the conversation out of its folder."
    )
    pinned: bool | None = None
    archived: bool | None = None
    llm_config_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description="Explicit null falls back to the user's default preset."
    )


@strawberry.type
class ConversationQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def conversation(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> ConversationType | None:
        conversation = await info.context.services.conversations.get(
            await info.context.owner_id(), id
        )
        return ConversationType.from_record(conversation)

    @strawberry.field(
        description=(
            "Newest activity first. `search` matches titles and message text, case-insensitively."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def conversations(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        folder_id: strawberry.ID | None = None,
        pinned: bool | None = None,
        archived: bool | None = False,
        search: str | None = None,
    ) -> ConversationConnection:
        page = await info.context.services.conversations.list_page(
            await info.context.owner_id(),
            first=first,
            after=after,
            folder_id=folder_id,
            pinned=pinned,
            archived=archived,
            search=search,
        )
        return ConversationConnection.of(page)


@strawberry.type
class ConversationMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_conversation(
        self, info: strawberry.Info, input: CreateConversationInput
    ) -> ConversationType:
        conversation = await info.context.services.conversations.create(
            await info.context.owner_id(),
            title=input.title,
            folder_id=input.folder_id,
            llm_config_id=input.llm_config_id,
        )
        return ConversationType.from_record(conversation)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_conversation(
        self, info: strawberry.Info, id: strawberry.ID, input: UpdateConversationInput
    ) -> ConversationType:
        changes: dict[str, Any] = {
            "title": input.title,
            "pinned": input.pinned,
            "archived": input.archived,
        }
        if input.folder_id is not None:
            changes["folderId"] = input.folder_id.value
        if input.llm_config_id is not None:
            changes["llmConfigId"] = input.llm_config_id.value
        conversation = await info.context.services.conversations.update(
            await info.context.owner_id(), id, changes
        )
        return ConversationType.from_record(conversation)

    @strawberry.mutation(
        description="Deletes the conversation and all its messages.",
        permission_classes=[IsAuthenticated],
    )
    async def delete_conversation(self, info: strawberry.Info, id: strawberry.ID) -> bool:
        await info.context.services.conversations.delete(await info.context.owner_id(), id)
        return True
