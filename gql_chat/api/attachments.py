"""Attachments in GraphQL: the `Attachment` type, `uploadAttachment` (the GraphQL multipart
request spec: `scalar Upload`) and the signed URL each attachment is read back by."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection
from strawberry.file_uploads import Upload

from gql_chat.api.context import Info
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.config import Settings
from gql_chat.domain.attachments import AttachmentKind as AttachmentKindValue
from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.errors import BadUserInput

AttachmentKind = strawberry.enum(
    AttachmentKindValue,
    name="AttachmentKind",
    description="What a file is, decided by its bytes: an image, a PDF or UTF-8 text.",
)
WEBSOCKET_SCHEMES = {"ws": "http", "wss": "https"}


def public_base(settings: Settings, connection: HTTPConnection) -> str:
    """`GQL_CHAT_PUBLIC_URL`, else the address this request came to (over a websocket, its
    HTTP twin)."""
    if settings.public_url:
        return settings.public_url
    base = connection.base_url
    return str(base.replace(scheme=WEBSOCKET_SCHEMES.get(base.scheme, base.scheme)))


def public_base_url(info: Info) -> str:
    return public_base(info.context.services.settings, info.context.request)


@strawberry.type(name="Attachment", description="A file uploaded to be sent with messages.")
class AttachmentType:
    id: strawberry.ID
    kind: AttachmentKind  # type: ignore[valid-type]
    filename: str
    media_type: str = strawberry.field(
        description="Decided by the content: image/png, image/jpeg, image/webp, image/gif, "
        "application/pdf, or a text type (text/plain, text/markdown, text/csv, application/json)."
    )
    size: int = strawberry.field(description="Bytes stored (an image's without its metadata).")
    sha256: str = strawberry.field(description="Hex SHA-256 of the bytes stored.")
    width: int | None = strawberry.field(description="Images: pixels, as shown (EXIF-rotated).")
    height: int | None
    page_count: int | None = strawberry.field(
        description="PDFs, when it can be read without parsing the whole file; else null."
    )
    created_at: datetime
    record: strawberry.Private[AttachmentRecord]

    @classmethod
    def from_record(cls, attachment: AttachmentRecord) -> AttachmentType:
        return cls(
            id=strawberry.ID(str(attachment.id)),
            kind=attachment.kind,
            filename=attachment.filename,
            media_type=attachment.media_type,
            size=attachment.size,
            sha256=attachment.sha256,
            width=attachment.width,
            height=attachment.height,
            page_count=attachment.page_count,
            created_at=attachment.created_at,
            record=attachment,
        )

    @strawberry.field(
        description=(
            "A signed download URL, valid for GQL_CHAT_FILE_URL_TTL (an hour by default): an "
            "<img> or a link can use it without an Authorization header."
        )
    )
    def url(self, info: Info) -> str:
        return info.context.services.attachments.url(public_base_url(info), self.record)


@strawberry.type
class AttachmentMutation:
    @strawberry.mutation(
        description=(
            "Uploads one file (GraphQL multipart request: send it as multipart/form-data with "
            "an Apollo-Require-Preflight header). PNG, JPEG, WebP and GIF images (metadata "
            "removed), PDFs and UTF-8 text are accepted, decided by their content."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def upload_attachment(
        self, info: Info, file: Annotated[Upload, strawberry.argument()]
    ) -> AttachmentType:
        if not isinstance(file, UploadFile):  # a JSON value where the file should be
            raise BadUserInput(
                "file",
                "Send the file as a file part (with a filename) of a GraphQL multipart request "
                "(multipart/form-data).",
            )
        attachment = await info.context.services.attachments.upload(
            await info.context.owner_id(), file
        )
        return AttachmentType.from_record(attachment)
