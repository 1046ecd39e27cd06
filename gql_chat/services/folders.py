"""Folders: a per-user tree with ordered siblings, bounded depth, and no cycles."""

from __future__ import annotations

from bson import ObjectId

from gql_chat.errors import BadUserInput, NotFound
from gql_chat.services.validation import check_text
from gql_chat.store.database import Database
from gql_chat.store.folders import FolderRecord
from gql_chat.store.ids import parse_object_id
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

MAX_DEPTH = 16
NAME_LENGTH = (1, 200)
FOLDER_NOT_FOUND = "Folder not found."


class FolderService:
    def __init__(
        self, database: Database, events: UserEventBus, max_depth: int = MAX_DEPTH
    ) -> None:
        self._db = database
        self._events = events
        self._folders = database.folders
        self._max_depth = max_depth

    async def get(self, owner_id: ObjectId, folder_id: str | ObjectId | None) -> FolderRecord:
        oid = parse_object_id(folder_id)
        folder = await self._folders.get(owner_id, oid) if oid else None
        if folder is None:
            raise NotFound(FOLDER_NOT_FOUND)
        return folder

    async def list_all(self, owner_id: ObjectId) -> list[FolderRecord]:
        return await self._folders.list_all(owner_id)

    async def create(self, owner_id: ObjectId, name: str, parent_id: str | None) -> FolderRecord:
        clean_name = check_text(name, "name", *NAME_LENGTH, label="Folder name")
        parent = await self.get(owner_id, parent_id) if parent_id is not None else None
        if parent is not None and len(await self._ancestry(owner_id, parent)) >= self._max_depth:
            raise BadUserInput("parentId", f"Folders nest at most {self._max_depth} deep.")
        parent_oid = parent.id if parent else None
        position = await self._folders.count_children(owner_id, parent_oid)
        folder = await self._folders.insert(owner_id, clean_name, parent_oid, position)
        self._publish(owner_id, UserEventKind.FOLDER_CREATED, [folder.id])
        return folder

    async def update(
        self,
        owner_id: ObjectId,
        folder_id: str,
        *,
        name: str | None = None,
        move: bool = False,
        parent_id: str | None = None,
        position: int | None = None,
    ) -> FolderRecord:
        """`move` distinguishes "parentId: null" (to the top level) from an omitted parentId.
        Every input is checked before the first write: a refused update changes nothing."""
        clean_name = None if name is None else check_text(name, "name", *NAME_LENGTH, "Folder name")
        folder = await self.get(owner_id, folder_id)
        new_parent = folder.parent_id
        if move:
            new_parent = await self._check_move(owner_id, folder, parent_id)
        if clean_name is not None:
            await self._folders.update(owner_id, folder.id, name=clean_name)
        if new_parent != folder.parent_id:
            await self._folders.update(owner_id, folder.id, parent_id=new_parent)
            await self._renumber(owner_id, folder.parent_id)
            await self._place(owner_id, folder.id, new_parent, position)
        elif position is not None:
            await self._place(owner_id, folder.id, new_parent, position)
        self._publish(owner_id, UserEventKind.FOLDER_UPDATED, [folder.id])
        return await self.get(owner_id, folder.id)

    async def delete(self, owner_id: ObjectId, folder_id: str, delete_contents: bool) -> None:
        """Writes are ordered so that a retry after a failure halfway finishes the job and no
        step leaves a folder, conversation or message pointing at something deleted."""
        folder = await self.get(owner_id, folder_id)
        if not delete_contents:
            siblings = await self._folders.children_of(owner_id, [folder.parent_id])
            children = await self._folders.children_of(owner_id, [folder.id])
            await self._db.conversations.move_out_of_folders(
                owner_id, [folder.id], folder.parent_id
            )
            await self._folders.reparent_children(owner_id, folder.id, folder.parent_id)
            await self._folders.delete_many(owner_id, [folder.id])
            # The moved subfolders go after the parent's own, in their old order.
            order = [f.id for f in siblings if f.id != folder.id] + [f.id for f in children]
            await self._folders.set_positions(owner_id, order)
            self._publish(owner_id, UserEventKind.FOLDER_DELETED, [folder.id])
            self._publish(owner_id, UserEventKind.FOLDER_UPDATED, [f.id for f in children])
            return
        levels = await self._subtree_levels(owner_id, folder.id)
        subtree = [fid for level in levels for fid in level]
        conversation_ids = await self._db.conversations.ids_in_folders(owner_id, subtree)
        await self._db.messages.delete_for_conversations(owner_id, conversation_ids)
        await self._db.conversations.delete_many(owner_id, conversation_ids)
        for level in reversed(levels):  # leaves first, the folder itself last
            await self._folders.delete_many(owner_id, level)
        await self._renumber(owner_id, folder.parent_id)
        for conversation_id in conversation_ids:
            self._events.publish(
                owner_id,
                UserEvent(UserEventKind.CONVERSATION_DELETED, conversation_id=conversation_id),
            )
        self._publish(owner_id, UserEventKind.FOLDER_DELETED, subtree)

    def _publish(self, owner_id: ObjectId, kind: UserEventKind, folder_ids: list[ObjectId]) -> None:
        for folder_id in folder_ids:
            self._events.publish(owner_id, UserEvent(kind, folder_id=folder_id))

    async def _check_move(
        self, owner_id: ObjectId, folder: FolderRecord, parent_id: str | None
    ) -> ObjectId | None:
        if parent_id is None:
            return None
        parent = await self.get(owner_id, parent_id)
        ancestry = await self._ancestry(owner_id, parent)
        if folder.id in ancestry:
            raise BadUserInput("parentId", "A folder cannot move into itself or its subfolders.")
        height = len(await self._subtree_levels(owner_id, folder.id))
        if len(ancestry) + height > self._max_depth:
            raise BadUserInput("parentId", f"Folders nest at most {self._max_depth} deep.")
        return parent.id

    async def _ancestry(self, owner_id: ObjectId, folder: FolderRecord) -> list[ObjectId]:
        """The folder and its ancestors, bottom up."""
        chain = [folder.id]
        current = folder
        while current.parent_id is not None and len(chain) <= self._max_depth:
            parent = await self._folders.get(owner_id, current.parent_id)
            if parent is None:
                break
            chain.append(parent.id)
            current = parent
        return chain

    async def _subtree_levels(self, owner_id: ObjectId, root: ObjectId) -> list[list[ObjectId]]:
        """Folder ids by depth, the root first: one query per level."""
        levels = [[root]]
        while True:
            children = await self._folders.children_of(owner_id, list(levels[-1]))
            if not children:
                return levels
            levels.append([child.id for child in children])

    async def _place(
        self, owner_id: ObjectId, folder_id: ObjectId, parent: ObjectId | None, position: int | None
    ) -> None:
        siblings = [
            f.id for f in await self._folders.children_of(owner_id, [parent]) if f.id != folder_id
        ]
        index = len(siblings) if position is None else max(0, min(position, len(siblings)))
        siblings.insert(index, folder_id)
        await self._folders.set_positions(owner_id, siblings)

    async def _renumber(self, owner_id: ObjectId, parent: ObjectId | None) -> None:
        siblings = await self._folders.children_of(owner_id, [parent])
        await self._folders.set_positions(owner_id, [f.id for f in siblings])
