"""Conversations: creation, filing into folders, presets, listing and search."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from gql_chat.domain.changes import UNSET, Maybe
from gql_chat.domain.clock import utc_now
from gql_chat.domain.conversations import ConversationFilter, ConversationRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.pages import Page
from gql_chat.errors import NotFound
from gql_chat.services.folders import ConversationsHook, FolderService
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.owners import keep_unless_owner_gone
from gql_chat.services.pagination import check_direction, page_size
from gql_chat.services.validation import check_search, check_text
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

DEFAULT_TITLE = "New conversation"
TITLE_LENGTH = (1, 200)
CONVERSATION_NOT_FOUND = "Conversation not found."


@dataclass(frozen=True, slots=True)
class ConversationChanges:
    """What an update sets; None moves the conversation out of its folder or drops its preset."""

    title: Maybe[str] = UNSET
    folder_id: Maybe[str | None] = UNSET
    llm_config_id: Maybe[str | None] = UNSET
    pinned: Maybe[bool] = UNSET
    archived: Maybe[bool] = UNSET


def check_title(title: str) -> str:
    return check_text(title, "title", *TITLE_LENGTH, label="Title")


class ConversationService:
    def __init__(
        self,
        database: Database,
        folders: FolderService,
        presets: LlmConfigService,
        events: UserEventBus,
        on_deleting: ConversationsHook | None = None,
    ) -> None:
        self._db = database
        self._on_deleting = on_deleting
        self._events = events
        self._conversations = database.conversations
        self._folders = folders
        self._presets = presets

    async def get(
        self, owner_id: ObjectId, conversation_id: str | ObjectId | None
    ) -> ConversationRecord:
        oid = parse_object_id(conversation_id)
        conversation = await self._conversations.get(owner_id, oid) if oid else None
        if conversation is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        return conversation

    async def create(
        self,
        owner_id: ObjectId,
        *,
        title: str | None = None,
        folder_id: str | None = None,
        llm_config_id: str | None = None,
        title_source: str | None = None,
        check_owner: bool = True,
    ) -> ConversationRecord:
        """`check_owner`: take the conversation back when its owner was deleted or disabled
        meanwhile (`services/owners.py`); a send checks its user itself, after its writes."""
        clean_title = check_title(title) if title is not None else DEFAULT_TITLE
        folder = await self._folders.get(owner_id, folder_id) if folder_id is not None else None
        preset = (
            await self._presets.get(owner_id, llm_config_id) if llm_config_id is not None else None
        )
        conversation = await self._conversations.insert(
            owner_id,
            title=clean_title,
            title_source=title_source or ("user" if title is not None else "default"),
            folder_id=folder.id if folder else None,
            llm_config_id=preset.id if preset else None,
        )
        if check_owner:
            await keep_unless_owner_gone(
                self._db.users,
                owner_id,
                lambda: self._conversations.delete_many(owner_id, [conversation.id]),
            )
        self.publish(owner_id, UserEventKind.CONVERSATION_CREATED, conversation.id)
        return conversation

    async def update(
        self, owner_id: ObjectId, conversation_id: str, changes: ConversationChanges
    ) -> ConversationRecord:
        """Every input is checked before the write; nothing given, nothing written."""
        conversation = await self.get(owner_id, conversation_id)
        fields: dict[str, Any] = {}
        if changes.title is not UNSET:
            fields["title"] = check_title(changes.title)
            fields["title_source"] = "user"
        if changes.folder_id is not UNSET:
            fields["folder_id"] = (
                (await self._folders.get(owner_id, changes.folder_id)).id
                if changes.folder_id is not None
                else None
            )
        if changes.llm_config_id is not UNSET:
            fields["llm_config_id"] = (
                (await self._presets.get(owner_id, changes.llm_config_id)).id
                if changes.llm_config_id is not None
                else None
            )
        if changes.pinned is not UNSET:
            fields["pinned"] = changes.pinned
        if changes.archived is not UNSET:
            fields["archived"] = changes.archived
        if not fields:
            return conversation
        updated = await self._conversations.update(owner_id, conversation.id, fields)
        if updated is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        self.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, conversation.id)
        return updated

    async def delete(self, owner_id: ObjectId, conversation_id: str | ObjectId) -> None:
        """Its streaming replies are stopped first (their upstream requests closed, their slots
        freed). Messages next: a failure halfway leaves the conversation, and a retry finishes."""
        conversation = await self.get(owner_id, conversation_id)
        removing = (
            self._on_deleting(owner_id, [conversation.id])
            if self._on_deleting is not None
            else contextlib.nullcontext()
        )
        async with removing:
            await self._db.shares.delete_for_conversations(owner_id, [conversation.id])
            await self._db.messages.delete_for_conversations(owner_id, [conversation.id])
            await self._db.usage.delete_for_conversations(owner_id, [conversation.id])
            await self._db.attachments.delete_for_conversations(owner_id, [conversation.id])
            await self._conversations.delete_many(owner_id, [conversation.id])
            # Again: a send that bound a file (or a share made) meanwhile, before the
            # conversation was gone, is caught now.
            await self._db.attachments.delete_for_conversations(owner_id, [conversation.id])
            await self._db.shares.delete_for_conversations(owner_id, [conversation.id])
        self.publish(owner_id, UserEventKind.CONVERSATION_DELETED, conversation.id)

    async def set_active_leaf(
        self,
        owner_id: ObjectId,
        conversation_id: ObjectId,
        leaf_id: ObjectId | None,
        *,
        replied: bool = False,
    ) -> ConversationRecord | None:
        """Make `leaf_id` the branch shown; `replied` when it is a new reply, which makes the
        conversation's latest activity now. None when the conversation is gone."""
        fields: dict[str, Any] = {"active_leaf_id": leaf_id}
        if replied:
            now = utc_now()
            fields |= {"last_message_at": now, "activity_at": now}
        updated = await self._conversations.update(owner_id, conversation_id, fields)
        if updated is not None:
            self.publish(owner_id, UserEventKind.CONVERSATION_UPDATED, conversation_id)
        return updated

    def publish(
        self,
        owner_id: ObjectId,
        kind: UserEventKind,
        conversation_id: ObjectId,
        message_id: ObjectId | None = None,
    ) -> None:
        self._events.publish(
            owner_id, UserEvent(kind, conversation_id=conversation_id, message_id=message_id)
        )

    async def list_page(
        self,
        owner_id: ObjectId,
        *,
        first: int | None,
        after: str | None,
        last: int | None = None,
        before: str | None = None,
        folder_id: str | ObjectId | None = None,
        pinned: bool | None = None,
        archived: bool | None = False,
        search: str | None = None,
    ) -> Page[ConversationRecord]:
        """Forwards (`first`/`after`) or backwards (`last`/`before`), not both at once."""
        check_direction(first, last)
        backwards = last is not None
        size = page_size(last, "last") if backwards else page_size(first)
        text = check_search(search)
        folder = await self._folders.get(owner_id, folder_id) if folder_id is not None else None
        matching: tuple[ObjectId, ...] = ()
        if text:
            matching = tuple(await self._db.messages.conversations_matching(owner_id, text))
        where = ConversationFilter(
            folder_id=folder.id if folder else None,
            pinned=pinned,
            archived=archived,
            search=text,
            matching_ids=matching,
        )
        return await self._conversations.list_page(
            owner_id, where, size, after=after, before=before, backwards=backwards
        )
