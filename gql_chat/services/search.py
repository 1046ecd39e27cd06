"""Searching a user's messages: hits newest first, each with where the text matched.

The match is the same as conversation search: literal (never a pattern) and case-insensitive,
over message text (not reasoning). Each hit's snippet is cut from the message around its first
match, so a client shows it without the whole message."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId

from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRecord
from gql_chat.domain.pages import Page
from gql_chat.errors import BadUserInput
from gql_chat.services.pagination import page_size
from gql_chat.services.validation import check_search
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.database import Database

SNIPPET_CONTEXT = 60
"""Characters shown on each side of the match."""


@dataclass(frozen=True, slots=True)
class Snippet:
    before: str
    match: str
    after: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: MessageRecord
    conversation: ConversationRecord
    snippet: Snippet


def snippet_of(content: str, text: str) -> Snippet:
    """Around the first case-insensitive occurrence of `text`; cut at word boundaries where one
    is near, so a snippet does not start or end mid-word."""
    found = re.search(re.escape(text), content, re.IGNORECASE)
    if found is None:  # changed since it matched: show its start
        return Snippet("", "", content[: SNIPPET_CONTEXT * 2])
    start, end = found.span()
    before = content[max(0, start - SNIPPET_CONTEXT) : start]
    after = content[end : end + SNIPPET_CONTEXT]
    if start > SNIPPET_CONTEXT and " " in before:
        before = before[before.index(" ") + 1 :]
    if end + SNIPPET_CONTEXT < len(content) and " " in after:
        after = after[: after.rindex(" ")]
    return Snippet(before, content[start:end], after)


class SearchService:
    def __init__(self, database: Database) -> None:
        self._messages = database.messages
        self._conversations = database.conversations

    async def search(
        self,
        owner_id: ObjectId,
        query: str,
        first: int | None,
        after: str | None,
        *,
        count: bool = True,
    ) -> Page[SearchHit]:
        """`count`: whether to count every match (a second pass over the user's messages; the
        api asks only when `totalCount` is selected). Not counted, `total_count` is 0."""
        text = check_search(query, "query")
        if text is None:
            raise BadUserInput("query", "Search for at least one character.")
        size = page_size(first)
        older_than = _cursor_id(after) if after is not None else None
        found = await self._messages.search(owner_id, text, size + 1, older_than)
        messages = found[:size]
        conversations = await self._conversations.get_many(
            owner_id, list({m.conversation_id for m in messages})
        )
        items = [
            (
                encode_cursor({"m": str(message.id)}),
                SearchHit(
                    message,
                    conversations[message.conversation_id],
                    snippet_of(message.content, text),
                ),
            )
            for message in messages
            if message.conversation_id in conversations
        ]
        return Page(
            items=items,
            has_next_page=len(found) > size,
            has_previous_page=after is not None,
            total_count=await self._messages.count_matching(owner_id, text) if count else 0,
        )


def _cursor_id(cursor: str) -> ObjectId:
    try:
        return ObjectId(decode_cursor(cursor, "after")["m"])
    except (KeyError, TypeError, InvalidId):
        raise BadUserInput("after", "Invalid cursor.") from None
