"""Share links in GraphQL: `shareConversation`, `shares`, `revokeShare` for the owner, and
`sharedConversation(token)` for anyone with the link (no sign-in: it shows no ids, email,
usage or cost)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_chat.api.attachments import public_base_url
from gql_chat.api.context import Info
from gql_chat.api.messages import MessageRole
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.messages import SharedMessageRecord
from gql_chat.domain.shares import ShareRecord


@strawberry.type(description="A read-only link to a snapshot of a conversation's path.")
class Share:
    id: strawberry.ID
    conversation_id: strawberry.ID
    up_to_message_id: strawberry.ID = strawberry.field(
        description="The last message of the snapshot."
    )
    title: str
    message_count: int
    created_at: datetime
    token: str | None = strawberry.field(
        description=(
            "The link's secret, in `shareConversation`'s answer only (only its hash is kept): "
            "pass it to `sharedConversation`."
        )
    )
    url: str | None = strawberry.field(
        description=(
            "`GQL_CHAT_SHARE_URL` (default: <public URL>/shared/) followed by the token, in "
            "`shareConversation`'s answer only: the page of your frontend that reads it."
        )
    )

    @classmethod
    def of(cls, share: ShareRecord, token: str | None = None, url: str | None = None) -> Share:
        return cls(
            id=strawberry.ID(str(share.id)),
            conversation_id=strawberry.ID(str(share.conversation_id)),
            up_to_message_id=strawberry.ID(str(share.up_to_message_id)),
            title=share.title,
            message_count=share.message_count,
            created_at=share.created_at,
            token=token,
            url=url,
        )


@strawberry.type
class ShareEdge:
    cursor: str
    node: Share


@strawberry.type
class ShareConnection:
    edges: list[ShareEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A file of a shared message, readable through its signed `url`.")
class SharedAttachment:
    filename: str
    media_type: str
    size: int
    width: int | None
    height: int | None
    page_count: int | None
    url: str


@strawberry.type
class SharedMessage:
    role: MessageRole  # type: ignore[valid-type]
    model: str | None
    created_at: datetime
    attachments: list[SharedAttachment]
    text: strawberry.Private[str]

    @strawberry.field
    def content(self, info: Info) -> str:
        info.context.charge_text(self.text)  # the response budget, as `Message.content`
        return self.text


@strawberry.type
class SharedMessageEdge:
    cursor: str
    node: SharedMessage


@strawberry.type
class SharedMessageConnection:
    edges: list[SharedMessageEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A shared snapshot, as anyone with its link sees it.")
class SharedConversation:
    title: str
    shared_at: datetime
    message_count: int
    record: strawberry.Private[ShareRecord]

    @strawberry.field(description="Oldest first; `first` at most 100.")
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> SharedMessageConnection:
        shares = info.context.services.shares
        found = await shares.messages(self.record, first, after)
        base_url = public_base_url(info)

        def attachment(file: AttachmentRecord) -> SharedAttachment:
            return SharedAttachment(
                filename=file.filename,
                media_type=file.media_type,
                size=file.size,
                width=file.width,
                height=file.height,
                page_count=file.page_count,
                url=shares.file_url(base_url, self.record, file),
            )

        def node(message: SharedMessageRecord) -> SharedMessage:
            return SharedMessage(
                role=message.role,
                model=message.model,
                created_at=message.created_at,
                attachments=[
                    attachment(found.files[i]) for i in message.attachment_ids if i in found.files
                ],
                text=message.content,
            )

        return SharedMessageConnection(
            edges=[SharedMessageEdge(cursor=c, node=node(m)) for c, m in found.page.items],
            page_info=PageInfo.of(found.page),
            total_count=found.page.total_count,
        )


@strawberry.type
class ShareQuery:
    @strawberry.field(
        description=(
            "A shared snapshot, by its link's token; no sign-in needed (rate-limited per IP). "
            "An unknown or revoked token is NOT_FOUND."
        )
    )
    async def shared_conversation(self, info: Info, token: str) -> SharedConversation:
        share = await info.context.services.shares.shared(token, info.context.client_ip)
        return SharedConversation(
            title=share.title,
            shared_at=share.created_at,
            message_count=share.message_count,
            record=share,
        )

    @strawberry.field(
        description="Your share links, newest first (their tokens are not kept: `Share.token`).",
        permission_classes=[IsAuthenticated],
    )
    async def shares(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ShareConnection:
        page = await info.context.services.shares.list(await info.context.owner_id(), first, after)
        return ShareConnection(
            edges=[ShareEdge(cursor=cursor, node=Share.of(share)) for cursor, share in page.items],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type
class ShareMutation:
    @strawberry.mutation(
        description=(
            "A read-only snapshot of the conversation's path up to `upToMessageId` (default: its "
            "active branch), with a new link; it replaces the conversation's earlier links. "
            "Later messages do not appear in it."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def share_conversation(
        self, info: Info, id: strawberry.ID, up_to_message_id: strawberry.ID | None = None
    ) -> Share:
        share, token = await info.context.services.shares.share(
            await info.context.owner_id(), id, up_to_message_id
        )
        prefix = (
            info.context.services.settings.share_url
            or f"{public_base_url(info).rstrip('/')}/shared/"
        )
        return Share.of(share, token=token, url=f"{prefix}{token}")

    @strawberry.mutation(
        description="Revokes a share link: it is NOT_FOUND from now on, and so are its files.",
        permission_classes=[IsAuthenticated],
    )
    async def revoke_share(self, info: Info, id: strawberry.ID) -> bool:
        await info.context.services.shares.revoke(await info.context.owner_id(), id)
        return True
