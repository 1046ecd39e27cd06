"""Share links: making, reading (anonymously), listing and revoking read-only snapshots.

A share copies the path of a conversation up to a message (role, text, model, time and
files); its reader sees nothing else of the owner: no email, no ids of their other objects, no
usage or cost. Anonymous reads are rate-limited per IP (`GQL_CHAT_RATE_SHARED_READS_PER_IP`).
The files of a share are read through URLs signed for that share: revoking it (or deleting
the conversation or the account, which revokes it) ends them at once."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId

from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.audit import AuditAction
from gql_chat.domain.clock import utc_now
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import SharedMessageRecord
from gql_chat.domain.pages import Page
from gql_chat.domain.shares import ShareRecord, new_share_token
from gql_chat.domain.trees import path_to
from gql_chat.errors import BadUserInput, Conflict, NotFound
from gql_chat.services.attachments import AttachmentService, Download
from gql_chat.services.audit import AuditLog
from gql_chat.services.conversations import ConversationService
from gql_chat.services.file_urls import FileUrls
from gql_chat.services.pagination import page_size
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.tokens import token_digest
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.database import Database

SHARE_NOT_FOUND = "Shared conversation not found."
MAX_SHARE_TOKEN_CHARS = 200


@dataclass(frozen=True, slots=True)
class SharedPage:
    """A page of a share's messages, with the files they show."""

    page: Page[SharedMessageRecord]
    files: dict[ObjectId, AttachmentRecord]


class ShareService:
    def __init__(
        self,
        database: Database,
        conversations: ConversationService,
        attachments: AttachmentService,
        file_urls: FileUrls,
        rate_limits: RateLimits,
        audit: AuditLog,
    ) -> None:
        self._audit = audit
        self._db = database
        self._store = database.shares
        self._conversations = conversations
        self._attachments = attachments
        self._urls = file_urls
        self._limits = rate_limits

    async def share(
        self, owner_id: ObjectId, conversation_id: str, up_to_message_id: str | None
    ) -> tuple[ShareRecord, str]:
        """A new snapshot of the path to `up_to_message_id` (else to the active leaf), and its
        token (shown this once). It replaces the conversation's earlier shares."""
        conversation = await self._conversations.get(owner_id, conversation_id)
        leaf = conversation.active_leaf_id
        if up_to_message_id is not None:
            leaf = parse_object_id(up_to_message_id)
            if leaf is None:
                raise NotFound("Message not found.")
        if leaf is None:
            raise BadUserInput("id", "The conversation has no messages to share.")
        path = path_to(await self._db.messages.nodes(owner_id, [conversation.id]), leaf)
        if not path:
            raise NotFound("Message not found.")
        messages = await self._db.messages.get_many(owner_id, path)
        if any(not m.status.is_final for m in messages):
            raise Conflict("A reply on this path is still being written; share it when it ends.")
        snapshot = [
            SharedMessageRecord(
                position=position,
                role=m.role,
                content=m.content,
                model=m.model,
                created_at=m.created_at,
                attachment_ids=m.attachment_ids,
            )
            for position, m in enumerate(messages, start=1)
        ]
        share = ShareRecord(
            id=ObjectId(),
            owner_id=owner_id,
            conversation_id=conversation.id,
            up_to_message_id=leaf,
            title=conversation.title,
            message_count=len(snapshot),
            attachment_ids=frozenset(i for m in snapshot for i in m.attachment_ids),
            created_at=utc_now(),
        )
        token = new_share_token()
        await self._store.add(share, token_digest(token), snapshot)
        older = await self._store.older_for_conversation(owner_id, conversation.id, share.id)
        await self._store.delete_ids(owner_id, older)
        if await self._db.conversations.get(owner_id, conversation.id) is None:
            # Deleted meanwhile, after its deletion revoked its shares: so is this one.
            await self._store.delete_ids(owner_id, [share.id])
            raise NotFound("Conversation not found.")
        await self._audit.record(
            AuditAction.SHARE_CREATED,
            actor_id=owner_id,
            subject_id=owner_id,
            share=str(share.id),
            conversation=str(conversation.id),
            messages=str(share.message_count),
        )
        return share, token

    async def shared(self, token: str, client_ip: str) -> ShareRecord:
        """The share a link's token opens (anyone may ask, within the per-IP limit)."""
        await self._limits.hit(self._limits.shared_reads_per_ip, "shared", client_ip)
        share = None
        if 0 < len(token) <= MAX_SHARE_TOKEN_CHARS:
            share = await self._store.by_token_hash(token_digest(token))
        if share is None:
            raise NotFound(SHARE_NOT_FOUND)
        return share

    async def messages(
        self, share: ShareRecord, first: int | None, after: str | None
    ) -> SharedPage:
        size = page_size(first)
        position = 0
        if after is not None:
            value = decode_cursor(after, "after").get("p")
            if type(value) is not int or not 0 <= value <= share.message_count:
                raise BadUserInput("after", "Invalid cursor.")
            position = value
        found = await self._store.messages(share.id, position, size + 1)
        items = found[:size]
        files = await self._db.attachments.get_many(
            share.owner_id, {i for m in items for i in m.attachment_ids}
        )
        page = Page(
            items=[(encode_cursor({"p": m.position}), m) for m in items],
            has_next_page=len(found) > size,
            has_previous_page=position > 0,
            total_count=share.message_count,
        )
        return SharedPage(page, files)

    def file_url(self, base_url: str, share: ShareRecord, attachment: AttachmentRecord) -> str:
        return self._urls.sign_for_share(base_url, attachment.id, share.id, utc_now())

    async def download(
        self, attachment_id: str, share_id: str, expires: str, signature: str
    ) -> Download:
        """A file of a share, for a URL signed for it. Raises `BadSignature` (403), or
        `NotFound` (404) once the share is revoked or for a file it does not show."""
        signed = self._urls.verify_for_share(attachment_id, share_id, expires, signature, utc_now())
        share = await self._store.find(signed.share_id)
        if share is None or signed.attachment_id not in share.attachment_ids:
            raise NotFound("Not found.")
        return await self._attachments.download(share.owner_id, signed.attachment_id)

    async def list(
        self, owner_id: ObjectId, first: int | None, after: str | None
    ) -> Page[ShareRecord]:
        size = page_size(first)
        older_than = None
        if after is not None:
            older_than = parse_object_id(decode_cursor(after, "after").get("s"))
            if older_than is None:
                raise BadUserInput("after", "Invalid cursor.")
        found = await self._store.page(owner_id, size + 1, older_than)
        return Page(
            items=[(encode_cursor({"s": str(s.id)}), s) for s in found[:size]],
            has_next_page=len(found) > size,
            has_previous_page=after is not None,
            total_count=await self._store.count(owner_id),
        )

    async def revoke(self, owner_id: ObjectId, share_id: str) -> None:
        oid = parse_object_id(share_id)
        if oid is None or not await self._store.delete_ids(owner_id, [oid]):
            raise NotFound("Share not found.")
        await self._audit.record(
            AuditAction.SHARE_REVOKED, actor_id=owner_id, subject_id=owner_id, share=str(oid)
        )
