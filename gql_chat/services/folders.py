"""Folders: a per-user tree with ordered siblings, bounded depth, and no cycles.

Every change to a user's tree (create, update, delete) runs under that user's tree lock: an
asyncio lock for the requests of this process, then a lease in the database (`folder_locks`)
for those of other app instances. A move's check (read the ancestry) and its write therefore see
no other change in between, and two opposite moves cannot both pass. The lease works on the
embedded store and on any MongoDB (no transactions needed; a transaction alone would not do:
under snapshot isolation two moves writing different folders both commit). Should a lease run out
under a stalled holder, the parent write is still a compare-and-set and the move is re-validated
after the write and undone if it closed a cycle.

Every walk over the tree is bounded by the maximum depth or a set of visited folders, so even a
cycle already stored (corrupt data) cannot make a request loop: a walk treats it as a break.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from bson import ObjectId

from gql_chat.domain.changes import UNSET, Maybe
from gql_chat.domain.folders import FolderRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.errors import BadUserInput, Conflict, LimitReached, NotFound
from gql_chat.services.owners import keep_unless_owner_gone
from gql_chat.services.tree_lock import LOCK_LEASE, LOCK_WAIT, TreeLock
from gql_chat.services.validation import check_text
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

logger = logging.getLogger(__name__)

MAX_DEPTH = 16
MAX_FOLDERS = 500
"""Folders one user may have: `folders` lists them all, unpaged."""
NAME_LENGTH = (1, 200)
FOLDER_NOT_FOUND = "Folder not found."
INTO_ITSELF = "A folder cannot move into itself or its subfolders."
BROKEN_CHAIN = (
    "The target folder's ancestors loop or nest too deep; move one of them to the top level first."
)
SUBTREE_WALK_LIMIT = 4096
"""Levels walked down when deleting a subtree (valid trees have at most `max_depth`)."""


ConversationsHook = Callable[[ObjectId, Collection[ObjectId]], AbstractAsyncContextManager[None]]
"""Around deleting conversations: their replies are stopped first and none starts in them
meanwhile (the runner's `removing_conversations`)."""


@dataclass(frozen=True, slots=True)
class FolderChanges:
    """What an update sets; a `parent_id` of None moves the folder to the top level, and
    `position` places it among its siblings (0 first)."""

    name: Maybe[str] = UNSET
    parent_id: Maybe[str | None] = UNSET
    position: Maybe[int] = UNSET


class FolderService:
    def __init__(
        self,
        database: Database,
        events: UserEventBus,
        max_depth: int = MAX_DEPTH,
        *,
        max_folders: int = MAX_FOLDERS,
        lock_lease: timedelta = LOCK_LEASE,
        lock_wait: float = LOCK_WAIT,
        on_deleting_conversations: ConversationsHook | None = None,
    ) -> None:
        self._db = database
        self._on_deleting_conversations = on_deleting_conversations
        self._events = events
        self._folders = database.folders
        self._max_depth = max_depth
        self._max_folders = max_folders
        self._tree_locked = TreeLock(database.folders, lease=lock_lease, wait=lock_wait)

    async def get(self, owner_id: ObjectId, folder_id: str | ObjectId | None) -> FolderRecord:
        oid = parse_object_id(folder_id)
        folder = await self._folders.get(owner_id, oid) if oid else None
        if folder is None:
            raise NotFound(FOLDER_NOT_FOUND)
        return folder

    async def list_all(self, owner_id: ObjectId) -> list[FolderRecord]:
        return await self._folders.list_all(owner_id)

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[FolderRecord]:
        """The owner's folders among `ids`, in one read (a page's folders, batched)."""
        return await self._folders.get_many(owner_id, ids)

    async def children_of(
        self, owner_id: ObjectId, parent_ids: list[ObjectId | None]
    ) -> list[FolderRecord]:
        """The children of every folder in `parent_ids`, siblings in order, in one read."""
        return await self._folders.children_of(owner_id, parent_ids)

    async def create(self, owner_id: ObjectId, name: str, parent_id: str | None) -> FolderRecord:
        clean_name = check_text(name, "name", *NAME_LENGTH, label="Folder name")
        async with self._tree_locked(owner_id):
            if await self._folders.count(owner_id) >= self._max_folders:
                raise LimitReached(
                    f"You have {self._max_folders} folders, the most an account may have; "
                    "delete some first.",
                    self._max_folders,
                )
            parent = await self.get(owner_id, parent_id) if parent_id is not None else None
            if parent is not None:
                ancestry, broken = await self._ancestry(owner_id, parent)
                if broken:
                    raise BadUserInput("parentId", BROKEN_CHAIN)
                if len(ancestry) >= self._max_depth:
                    raise BadUserInput("parentId", f"Folders nest at most {self._max_depth} deep.")
            parent_oid = parent.id if parent else None
            position = await self._folders.count_children(owner_id, parent_oid)
            folder = await self._folders.insert(owner_id, clean_name, parent_oid, position)
            await keep_unless_owner_gone(
                self._db.users, owner_id, lambda: self._folders.delete_many(owner_id, [folder.id])
            )
        self._publish(owner_id, UserEventKind.FOLDER_CREATED, [folder.id])
        return folder

    async def update(
        self, owner_id: ObjectId, folder_id: str, changes: FolderChanges
    ) -> FolderRecord:
        """Every input is checked before the first write: a refused update changes nothing."""
        clean_name = (
            None
            if changes.name is UNSET
            else check_text(changes.name, "name", *NAME_LENGTH, "Folder name")
        )
        position = None if changes.position is UNSET else changes.position
        async with self._tree_locked(owner_id):
            folder = await self.get(owner_id, folder_id)
            new_parent = folder.parent_id
            if changes.parent_id is not UNSET:
                new_parent = await self._check_move(owner_id, folder, changes.parent_id)
            if clean_name is not None:
                await self._folders.update(owner_id, folder.id, name=clean_name)
            if new_parent != folder.parent_id:
                await self._move(owner_id, folder, new_parent)
                await self._renumber(owner_id, folder.parent_id)
                await self._place(owner_id, folder.id, new_parent, position)
            elif position is not None:
                await self._place(owner_id, folder.id, new_parent, position)
            self._publish(owner_id, UserEventKind.FOLDER_UPDATED, [folder.id])
            return await self.get(owner_id, folder.id)

    async def delete(self, owner_id: ObjectId, folder_id: str, delete_contents: bool) -> None:
        """Writes are ordered so that a retry after a failure halfway finishes the job and no
        step leaves a folder, conversation or message pointing at something deleted."""
        async with self._tree_locked(owner_id):
            await self._delete(owner_id, folder_id, delete_contents)

    async def _delete(self, owner_id: ObjectId, folder_id: str, delete_contents: bool) -> None:
        folder = await self.get(owner_id, folder_id)
        if not delete_contents:
            # The contents move up to the parent; when the folder's ancestors loop (corrupt
            # data), the cycle counts as broken at this folder: they move to the top level.
            _, broken = await self._ancestry(owner_id, folder)
            parent_id = None if broken else folder.parent_id
            siblings = await self._folders.children_of(owner_id, [parent_id])
            children = [
                f
                for f in await self._folders.children_of(owner_id, [folder.id])
                if f.id != folder.id
            ]
            await self._db.conversations.move_out_of_folders(owner_id, [folder.id], parent_id)
            await self._folders.reparent_children(owner_id, folder.id, parent_id)
            await self._folders.delete_many(owner_id, [folder.id])
            # The moved subfolders go after the parent's own, in their old order.
            order = [f.id for f in siblings if f.id != folder.id] + [f.id for f in children]
            await self._folders.set_positions(owner_id, order)
            self._publish(owner_id, UserEventKind.FOLDER_DELETED, [folder.id])
            self._publish(owner_id, UserEventKind.FOLDER_UPDATED, [f.id for f in children])
            return
        levels = await self._subtree_levels(owner_id, folder.id, SUBTREE_WALK_LIMIT)
        subtree = [fid for level in levels for fid in level]
        conversation_ids = await self._db.conversations.ids_in_folders(owner_id, subtree)
        removing = (
            self._on_deleting_conversations(owner_id, conversation_ids)
            if self._on_deleting_conversations is not None
            else nullcontext()
        )
        async with removing:  # their replies stop first, and none starts meanwhile
            await self._db.shares.delete_for_conversations(owner_id, conversation_ids)
            await self._db.messages.delete_for_conversations(owner_id, conversation_ids)
            await self._db.usage.delete_for_conversations(owner_id, conversation_ids)
            await self._db.attachments.delete_for_conversations(owner_id, conversation_ids)
            await self._db.conversations.delete_many(owner_id, conversation_ids)
            # Again: a send that bound a file (or a share made) meanwhile, before the
            # conversations were gone, is caught now.
            await self._db.attachments.delete_for_conversations(owner_id, conversation_ids)
            await self._db.shares.delete_for_conversations(owner_id, conversation_ids)
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
        ancestry, broken = await self._ancestry(owner_id, parent)
        if folder.id in ancestry:
            raise BadUserInput("parentId", INTO_ITSELF)
        if broken:
            raise BadUserInput("parentId", BROKEN_CHAIN)
        height = len(await self._subtree_levels(owner_id, folder.id, self._max_depth + 1))
        if len(ancestry) + height > self._max_depth:
            raise BadUserInput("parentId", f"Folders nest at most {self._max_depth} deep.")
        return parent.id

    async def _move(
        self, owner_id: ObjectId, folder: FolderRecord, new_parent: ObjectId | None
    ) -> None:
        """Write the checked move, then check it again: under the tree lock the second check
        always passes; should the lease have run out under a stalled request and another move
        have closed a cycle meanwhile, the move is undone (to the old parent, or the top level
        when that loops too) and refused. Never leaves a cycle through this folder."""
        if not await self._folders.move(owner_id, folder.id, folder.parent_id, new_parent):
            raise Conflict("The folder was moved meanwhile; try again.")
        moved = await self._folders.get(owner_id, folder.id)
        if moved is None:
            raise NotFound(FOLDER_NOT_FOUND)
        _, broken = await self._ancestry(owner_id, moved)
        if not broken:
            return
        await self._folders.move(owner_id, folder.id, new_parent, folder.parent_id)
        restored = await self._folders.get(owner_id, folder.id)
        if restored is not None and (await self._ancestry(owner_id, restored))[1]:
            await self._folders.move(owner_id, folder.id, restored.parent_id, None)
        raise BadUserInput("parentId", INTO_ITSELF)

    async def _ancestry(
        self, owner_id: ObjectId, folder: FolderRecord
    ) -> tuple[list[ObjectId], bool]:
        """The folder and its ancestors, bottom up (at most `max_depth` + 1 of them), and whether
        the chain is broken: it loops back on itself (a cycle, which only corrupt data holds) or
        goes on past that bound. A parent that does not exist ends the chain."""
        chain = [folder.id]
        seen = {folder.id}
        current = folder
        while current.parent_id is not None:
            if current.parent_id in seen or len(chain) > self._max_depth:
                return chain, True
            parent = await self._folders.get(owner_id, current.parent_id)
            if parent is None:
                break
            chain.append(parent.id)
            seen.add(parent.id)
            current = parent
        return chain, False

    async def _subtree_levels(
        self, owner_id: ObjectId, root: ObjectId, limit: int
    ) -> list[list[ObjectId]]:
        """Folder ids by depth, the root first, at most `limit` levels: one query per level.
        Each folder is listed once: a child already seen (a cycle back to the root, which only
        corrupt data holds) is left out, so the walk ends whatever is stored."""
        levels = [[root]]
        seen = {root}
        while len(levels) < limit:
            children = await self._folders.children_of(owner_id, list(levels[-1]))
            level = [child.id for child in children if child.id not in seen]
            if not level:
                break
            seen.update(level)
            levels.append(level)
        return levels

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
