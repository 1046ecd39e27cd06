"""Folders: `folders`, `folder`, and their mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId

from gql_chat.api.context import Info
from gql_chat.api.inputs import given, unless_null
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.folders import FolderRecord
from gql_chat.services.folders import FolderChanges

if TYPE_CHECKING:
    from gql_chat.api.conversations import ConversationConnection

ConversationConnectionRef = Annotated[
    "ConversationConnection", strawberry.lazy("gql_chat.api.conversations")
]


@strawberry.type(name="Folder")
class FolderType:
    id: strawberry.ID
    name: str
    position: int
    created_at: datetime
    updated_at: datetime
    folder_id: strawberry.Private[ObjectId]
    parent_id: strawberry.Private[ObjectId | None]

    @classmethod
    def from_record(cls, folder: FolderRecord) -> FolderType:
        return cls(
            id=strawberry.ID(str(folder.id)),
            name=folder.name,
            position=folder.position,
            created_at=folder.created_at,
            updated_at=folder.updated_at,
            folder_id=folder.id,
            parent_id=folder.parent_id,
        )

    @strawberry.field(description="Null for a top-level folder.")
    async def parent(self, info: Info) -> FolderType | None:
        if self.parent_id is None:
            return None
        parent = await (await info.context.loaders()).folder.load(self.parent_id)
        return FolderType.from_record(parent) if parent else None

    @strawberry.field
    async def children(self, info: Info) -> list[FolderType]:
        children = await (await info.context.loaders()).children.load(self.folder_id)
        return [FolderType.from_record(child) for child in children]

    @strawberry.field(
        description=(
            "The folder's own conversations (not its subfolders'), filtered like `conversations`: "
            "`archived` defaults to false; null for all."
        )
    )
    async def conversations(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        archived: bool | None = False,
        last: int | None = None,
        before: str | None = None,
    ) -> ConversationConnectionRef:
        from gql_chat.api.conversations import ConversationConnection

        page = await info.context.services.conversations.list_page(
            await info.context.owner_id(),
            first=first,
            after=after,
            last=last,
            before=before,
            folder_id=self.folder_id,
            archived=archived,
        )
        return await ConversationConnection.of(info, page)


@strawberry.input
class CreateFolderInput:
    name: str
    parent_id: strawberry.ID | None = None


@strawberry.input
class UpdateFolderInput:
    name: str | None = None
    parent_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description=(
            "Explicit null moves the folder to the top level; a move that would make a cycle "
            "is BAD_USER_INPUT."
        )
    )
    position: int | None = None


@strawberry.type
class FolderQuery:
    @strawberry.field(
        description="Every folder of the user, flat; rebuild the tree from `parent`.",
        permission_classes=[IsAuthenticated],
    )
    async def folders(self, info: Info) -> list[FolderType]:
        folders = await info.context.services.folders.list_all(await info.context.owner_id())
        return [FolderType.from_record(f) for f in folders]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def folder(self, info: Info, id: strawberry.ID) -> FolderType | None:
        folder = await info.context.services.folders.get(await info.context.owner_id(), id)
        return FolderType.from_record(folder)


@strawberry.type
class FolderMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_folder(self, info: Info, input: CreateFolderInput) -> FolderType:
        folder = await info.context.services.folders.create(
            await info.context.owner_id(), input.name, input.parent_id
        )
        return FolderType.from_record(folder)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_folder(
        self, info: Info, id: strawberry.ID, input: UpdateFolderInput
    ) -> FolderType:
        changes = FolderChanges(
            name=unless_null(input.name),
            parent_id=given(input.parent_id),
            position=unless_null(input.position),
        )
        folder = await info.context.services.folders.update(
            await info.context.owner_id(), id, changes
        )
        return FolderType.from_record(folder)

    @strawberry.mutation(
        description=(
            "Without deleteContents, subfolders and conversations move to the deleted folder's "
            "parent."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def delete_folder(
        self, info: Info, id: strawberry.ID, delete_contents: bool | None = False
    ) -> bool:
        await info.context.services.folders.delete(
            await info.context.owner_id(), id, bool(delete_contents)
        )
        return True
