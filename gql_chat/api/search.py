"""`searchMessages`: a user's messages that contain some text, newest first, each with the
conversation it is in and a snippet around the match."""

from __future__ import annotations

import strawberry

from gql_chat.api.context import Info
from gql_chat.api.conversations import ConversationType
from gql_chat.api.lookahead import selected_names
from gql_chat.api.messages import MessageRole, MessageType
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.pages import Page
from gql_chat.services.search import SearchHit


@strawberry.type(description="The text around a match: show `match` highlighted between the two.")
class SearchSnippet:
    before: str
    match: str
    after: str


@strawberry.type
class MessageSearchHit:
    message: MessageType
    conversation: ConversationType
    role: MessageRole  # type: ignore[valid-type]
    snippet: SearchSnippet

    @classmethod
    def of(cls, hit: SearchHit) -> MessageSearchHit:
        return cls(
            message=MessageType.from_record(hit.message),
            conversation=ConversationType.from_record(hit.conversation),
            role=hit.message.role,
            snippet=SearchSnippet(
                before=hit.snippet.before, match=hit.snippet.match, after=hit.snippet.after
            ),
        )


@strawberry.type
class MessageSearchEdge:
    cursor: str
    node: MessageSearchHit


@strawberry.type
class MessageSearchConnection:
    edges: list[MessageSearchEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[SearchHit]) -> MessageSearchConnection:
        return cls(
            edges=[MessageSearchEdge(cursor=c, node=MessageSearchHit.of(h)) for c, h in page.items],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type
class SearchQuery:
    @strawberry.field(
        description=(
            "Messages containing `query` (literally, case-insensitively; answers, not "
            "reasoning), newest first, with `first`/`after` paging."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def search_messages(
        self, info: Info, query: str, first: int | None = None, after: str | None = None
    ) -> MessageSearchConnection:
        page = await info.context.services.search.search(
            await info.context.owner_id(),
            query,
            first,
            after,
            count="totalCount" in selected_names(info),
        )
        return MessageSearchConnection.of(page)
