"""Conversations: `conversation`, `conversations`, and their mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId

from gql_chat.api.context import Info
from gql_chat.api.folders import FolderType
from gql_chat.api.inputs import given, unless_null
from gql_chat.api.llm_configs import LlmConfigType
from gql_chat.api.loaders import read_now
from gql_chat.api.lookahead import selected_names
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.folders import FolderRecord
from gql_chat.domain.pages import Page
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.services.conversations import ConversationChanges

if TYPE_CHECKING:
    from gql_chat.api.messages import MessageConnection, Usage

MessageConnectionRef = Annotated["MessageConnection", strawberry.lazy("gql_chat.api.messages")]
UsageRef = Annotated["Usage", strawberry.lazy("gql_chat.api.messages")]


@dataclass(frozen=True, slots=True)
class Prefetched:
    """A page's folders and presets, each read in one query before its rows resolve; None where
    the selection does not ask for them (a row then loads its own through the DataLoader)."""

    folders: Mapping[ObjectId, FolderRecord | None] | None = None
    presets: Mapping[ObjectId, LlmConfigRecord | None] | None = None


NOTHING_PREFETCHED = Prefetched()


def _folder_type(folder: FolderRecord | None) -> FolderType | None:
    return FolderType.from_record(folder) if folder else None


def _preset_type(preset: LlmConfigRecord | None) -> LlmConfigType | None:
    return LlmConfigType.from_record(preset) if preset else None


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
    prefetched: strawberry.Private[Prefetched] = NOTHING_PREFETCHED

    @classmethod
    def from_record(
        cls, conversation: ConversationRecord, prefetched: Prefetched = NOTHING_PREFETCHED
    ) -> ConversationType:
        return cls(
            id=strawberry.ID(str(conversation.id)),
            title=conversation.title,
            pinned=conversation.pinned,
            archived=conversation.archived,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            last_message_at=conversation.last_message_at,
            record=conversation,
            prefetched=prefetched,
        )

    @strawberry.field(description="Messages on the active branch.")
    async def message_count(self, info: Info) -> int:
        nodes = await (await info.context.loaders()).message_nodes.load(self.record.id)
        return len(info.context.services.messages.branch(nodes, self.record.active_leaf_id, None))

    @strawberry.field(description="Sum over every assistant message of the conversation.")
    async def usage(self, info: Info) -> UsageRef:
        from gql_chat.api.messages import Usage

        return Usage.of(await (await info.context.loaders()).usage.load(self.record.id))

    @strawberry.field(
        description=(
            "The active branch, oldest first; `last`/`before` pages backwards from the newest. "
            "With `leafId`, the branch through that message instead (down to its newest leaf), "
            "for this view only: the conversation's active branch, which every device shows, "
            "stays (`switchBranch` moves it)."
        )
    )
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        leaf_id: strawberry.ID | None = None,
    ) -> MessageConnectionRef:
        from gql_chat.api.messages import MessageConnection

        nodes = await (await info.context.loaders()).message_nodes.load(self.record.id)
        messages = info.context.services.messages
        page = await messages.page(
            await info.context.owner_id(),
            messages.branch(nodes, self.record.active_leaf_id, leaf_id),
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return MessageConnection.of(page)

    # `folder` and `llmConfig` are synchronous when the page prefetched their records: an
    # async resolver costs every row a coroutine and a task, most of a page's GraphQL overhead.
    @strawberry.field(graphql_type=FolderType | None)
    def folder(self, info: Info) -> FolderType | Awaitable[FolderType | None] | None:
        folder_id = self.record.folder_id
        if folder_id is None:
            return None
        if self.prefetched.folders is not None:
            return _folder_type(self.prefetched.folders.get(folder_id))
        return self._load_folder(info, folder_id)

    @strawberry.field(graphql_type=LlmConfigType | None)
    def llm_config(self, info: Info) -> LlmConfigType | Awaitable[LlmConfigType | None] | None:
        preset_id = self.record.llm_config_id
        if preset_id is None:
            return None
        if self.prefetched.presets is not None:
            return _preset_type(self.prefetched.presets.get(preset_id))
        return self._load_preset(info, preset_id)

    async def _load_folder(self, info: Info, folder_id: ObjectId) -> FolderType | None:
        return _folder_type(await (await info.context.loaders()).folder.load(folder_id))

    async def _load_preset(self, info: Info, preset_id: ObjectId) -> LlmConfigType | None:
        return _preset_type(await (await info.context.loaders()).llm_config.load(preset_id))


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
    async def of(cls, info: Info, page: Page[ConversationRecord]) -> ConversationConnection:
        """The page, with its folders and presets read up front when the selection asks."""
        prefetched = await _prefetch(info, [record for _, record in page.items])
        return cls(
            edges=[
                ConversationEdge(
                    cursor=cursor, node=ConversationType.from_record(record, prefetched)
                )
                for cursor, record in page.items
            ],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


async def _prefetch(info: Info, records: list[ConversationRecord]) -> Prefetched:
    if not records:
        return NOTHING_PREFETCHED
    loaders = await info.context.loaders()
    wanted = selected_names(info, "edges", "node")
    folders = presets = None
    if "folder" in wanted:
        folders = await read_now(loaders.folder, (r.folder_id for r in records))
    if "llmConfig" in wanted:
        presets = await read_now(loaders.llm_config, (r.llm_config_id for r in records))
    return Prefetched(folders=folders, presets=presets)


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
    async def conversation(self, info: Info, id: strawberry.ID) -> ConversationType | None:
        conversation = await info.context.services.conversations.get(
            await info.context.owner_id(), id
        )
        return ConversationType.from_record(conversation)

    @strawberry.field(
        description=(
            "Newest activity first. `search` matches titles and message text, case-insensitively. "
            "Page forwards with `first`/`after`, or backwards with `last`/`before`."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def conversations(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        folder_id: strawberry.ID | None = None,
        pinned: bool | None = None,
        archived: bool | None = False,
        search: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ConversationConnection:
        page = await info.context.services.conversations.list_page(
            await info.context.owner_id(),
            first=first,
            after=after,
            last=last,
            before=before,
            folder_id=folder_id,
            pinned=pinned,
            archived=archived,
            search=search,
        )
        return await ConversationConnection.of(info, page)


@strawberry.type
class ConversationMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_conversation(
        self, info: Info, input: CreateConversationInput
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
        self, info: Info, id: strawberry.ID, input: UpdateConversationInput
    ) -> ConversationType:
        changes = ConversationChanges(
            title=unless_null(input.title),
            folder_id=given(input.folder_id),
            llm_config_id=given(input.llm_config_id),
            pinned=unless_null(input.pinned),
            archived=unless_null(input.archived),
        )
        conversation = await info.context.services.conversations.update(
            await info.context.owner_id(), id, changes
        )
        return ConversationType.from_record(conversation)

    @strawberry.mutation(
        description="Deletes the conversation and all its messages.",
        permission_classes=[IsAuthenticated],
    )
    async def delete_conversation(self, info: Info, id: strawberry.ID) -> bool:
        await info.context.services.conversations.delete(await info.context.owner_id(), id)
        return True
