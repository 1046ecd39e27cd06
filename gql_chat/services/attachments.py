"""Attachments: uploads checked by their bytes and stored in GridFS, per-user storage quota,
signed download URLs, the files a message may carry, what a prompt sends of them, and the
hourly sweep of uploads never sent.

Each upload is stored on its own, even when the same user uploads the same bytes again: one
stored file per attachment keeps deletion a plain delete (no reference counting across
conversations), and nothing is ever shared between users."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO, Protocol

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.attachments import (
    MAX_ATTACHMENTS_PER_MESSAGE,
    UNSENT_UPLOAD_LIFETIME,
    AttachmentKind,
    AttachmentRecord,
)
from gql_chat.domain.clock import utc_now
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import MessageRole
from gql_chat.errors import BadUserInput, LimitReached, NotFound, RateLimited
from gql_chat.files.inspection import CHUNK_BYTES, InspectedFile, RefusedFile, inspect_file
from gql_chat.llm.tokens import CHARS_PER_TOKEN
from gql_chat.llm.types import ChatRequest, ModelInfo, PromptFile
from gql_chat.services.file_urls import FileUrls
from gql_chat.services.generation import CONVERSATION_GONE
from gql_chat.services.keyed_lock import KeyedLock
from gql_chat.services.tasks import end_tasks
from gql_chat.store.attachments import AttachmentStore
from gql_chat.store.database import Database

logger = logging.getLogger(__name__)

ATTACHMENT_NOT_FOUND = "Attachment not found."
MAX_FILENAME_CHARS = 255
UNSAFE_FILENAME_CHARACTERS = re.compile(r"[\x00-\x1f\x7f/\\]")
SWEEP_INTERVAL = 3600.0
INSPECTIONS_AT_ONCE = 2
"""Uploads checked at once (each may hold an image in memory and keeps a core busy); more wait."""
INSPECTION_WAIT = 30.0
RETRY_UPLOAD_AFTER = 5
MAX_PROMPT_FILE_BYTES = 50 * 1_048_576
"""Images and PDFs one request to the model may carry (base64 makes it a third more)."""
MIN_TEXT_CHARS = 2000
MAX_UTF8_BYTES = 4
FILE_FIELD = "file"
IDS_FIELD = "attachmentIds"


class Upload(Protocol):
    """What the api hands over: Starlette's `UploadFile` (a spooled temporary file)."""

    @property
    def filename(self) -> str | None: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def size(self) -> int | None: ...

    @property
    def file(self) -> BinaryIO: ...


@dataclass(frozen=True, slots=True)
class Download:
    attachment: AttachmentRecord
    chunks: AsyncGenerator[bytes]


class AttachmentService:
    def __init__(self, settings: Settings, database: Database, urls: FileUrls) -> None:
        self._settings = settings
        self._store: AttachmentStore = database.attachments
        self._conversations = database.conversations
        self._urls = urls
        self._inspections = asyncio.Semaphore(INSPECTIONS_AT_ONCE)
        self._per_user = KeyedLock()
        self._sweeper: asyncio.Task[None] | None = None

    # Uploads

    async def upload(self, owner_id: ObjectId, upload: Upload) -> AttachmentRecord:
        """Checked by content, counted against the quota, then stored; nothing is left of an
        upload that fails (see `store/attachments.py`)."""
        filename = clean_filename(upload.filename)
        limit = self._settings.max_upload_bytes
        size = upload.size if upload.size is not None else await asyncio.to_thread(_size_of, upload)
        if size > limit:
            raise BadUserInput(FILE_FIELD, f"The file is larger than {limit} bytes.")
        async with self._inspection_turn(owner_id):
            try:
                inspected = await asyncio.to_thread(
                    inspect_file, upload.file, filename, upload.content_type
                )
            except RefusedFile as exc:
                raise BadUserInput(FILE_FIELD, str(exc)) from None
        attachment = AttachmentRecord(
            id=ObjectId(),
            owner_id=owner_id,
            file_id=ObjectId(),
            kind=inspected.kind,
            filename=filename,
            media_type=inspected.media_type,
            size=inspected.size,
            sha256=inspected.sha256,
            created_at=utc_now(),
            width=inspected.width,
            height=inspected.height,
            page_count=inspected.page_count,
        )
        await self._store.add_pending(attachment)
        try:
            await self._check_quota(owner_id)
            await self._store.write_file(attachment, _contents(inspected, upload.file))
            await self._store.mark_ready(attachment.id)
        except BaseException:
            await asyncio.shield(self._forget(attachment))
            raise
        return attachment

    @contextlib.asynccontextmanager
    async def _inspection_turn(self, owner_id: ObjectId) -> AsyncIterator[None]:
        """A user's uploads are checked one at a time, and at most `INSPECTIONS_AT_ONCE` in
        all: one user's many (or slow, hostile) files wait behind each other, not in front of
        everyone. A turn that does not come within `INSPECTION_WAIT` is RATE_LIMITED."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(INSPECTION_WAIT):
                    await stack.enter_async_context(self._per_user(owner_id))
                    await stack.enter_async_context(self._inspections)
            except TimeoutError:
                raise RateLimited(
                    retry_after=RETRY_UPLOAD_AFTER,
                    message="Too many uploads are being checked; try again shortly.",
                ) from None
            yield

    async def _check_quota(self, owner_id: ObjectId) -> None:
        """After the pending insert, so that concurrent uploads each see the others."""
        quota = self._settings.user_storage_bytes
        used = await self._store.used_bytes(owner_id)
        if used > quota:
            raise LimitReached(
                f"Your files would take {used} bytes of your {quota}-byte storage: delete "
                "conversations with files to make room.",
                quota,
            )

    async def _forget(self, attachment: AttachmentRecord) -> None:
        try:
            await self._store.delete_ids([attachment.id])
        except Exception:  # the sweep of unsent uploads deletes it later
            logger.warning("could not delete a failed upload", exc_info=True)

    # Reading

    async def get(self, owner_id: ObjectId, attachment_id: str | ObjectId) -> AttachmentRecord:
        oid = parse_object_id(attachment_id)
        attachment = await self._store.get(owner_id, oid) if oid else None
        if attachment is None:
            raise NotFound(ATTACHMENT_NOT_FOUND)
        return attachment

    async def get_many(
        self, owner_id: ObjectId, ids: Iterable[ObjectId]
    ) -> dict[ObjectId, AttachmentRecord]:
        return await self._store.get_many(owner_id, ids)

    def url(self, base_url: str, attachment: AttachmentRecord) -> str:
        return self._urls.sign(base_url, attachment.id, attachment.owner_id, utc_now())

    async def download_signed(
        self, attachment_id: str, user: str, expires: str, signature: str
    ) -> Download:
        """Raises `BadSignature` (403) or `NotFound` (404)."""
        signed = self._urls.verify(attachment_id, user, expires, signature, utc_now())
        return await self.download(signed.owner_id, signed.attachment_id)

    async def download(self, owner_id: ObjectId, attachment_id: str | ObjectId) -> Download:
        attachment = await self.get(owner_id, attachment_id)
        try:
            chunks = await self._store.open_file(attachment.file_id)
        except FileNotFoundError:  # deleted since it was read
            raise NotFound(ATTACHMENT_NOT_FOUND) from None
        return Download(attachment, chunks)

    # Messages

    async def for_message(
        self,
        owner_id: ObjectId,
        ids: Sequence[str] | None,
        conversation_id: ObjectId | None,
        model: ModelInfo | None,
    ) -> tuple[AttachmentRecord, ...]:
        """The attachments a new message may carry: at most ten, the user's own, unsent or
        already in this conversation, and images only for a model that takes them (an
        unknown model is given the benefit of the doubt). Raises before anything is stored."""
        if not ids:
            return ()
        if len(ids) > MAX_ATTACHMENTS_PER_MESSAGE:
            raise BadUserInput(
                IDS_FIELD, f"A message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments."
            )
        oids = [oid for oid in map(parse_object_id, ids) if oid is not None]
        if len(set(oids)) != len(oids):
            raise BadUserInput(IDS_FIELD, "An attachment is listed twice.")
        found = await self._store.get_many(owner_id, oids)
        records = tuple(found[oid] for oid in oids if oid in found)
        if len(records) != len(ids) or any(
            r.conversation_id not in (None, conversation_id) for r in records
        ):
            raise NotFound(ATTACHMENT_NOT_FOUND)
        binary = sum(r.size for r in records if r.kind is not AttachmentKind.TEXT)
        if binary > MAX_PROMPT_FILE_BYTES:
            raise BadUserInput(
                IDS_FIELD,
                f"These images and PDFs take {binary} bytes; one message may send at most "
                f"{MAX_PROMPT_FILE_BYTES} bytes of them to a model.",
            )
        if (
            model is not None
            and "image" not in model.input_modalities
            and any(r.kind is AttachmentKind.IMAGE for r in records)
        ):
            raise BadUserInput(
                IDS_FIELD, f"The model {model.id} does not take images; choose one that does."
            )
        return records

    async def bind(
        self,
        owner_id: ObjectId,
        attachments: Sequence[AttachmentRecord],
        conversation_id: ObjectId,
    ) -> None:
        """Make them the conversation's; NOT_FOUND when one went meanwhile (deleted, or bound
        to another conversation by a concurrent send), or when the conversation did: its
        deletion deletes its files after deleting it, so a file bound before this check is
        deleted there, and one bound after is deleted here."""
        if not attachments:
            return
        ids = [a.id for a in attachments]
        if await self._store.bind(owner_id, ids, conversation_id) != len(ids):
            raise NotFound(ATTACHMENT_NOT_FOUND)
        if await self._conversations.get(owner_id, conversation_id) is None:
            await self._store.delete_for_conversations(owner_id, [conversation_id])
            raise NotFound(CONVERSATION_GONE)

    async def unbind(
        self, owner_id: ObjectId, attachments: Sequence[AttachmentRecord], conversation_id: ObjectId
    ) -> None:
        """Uploads a failed send bound to a conversation it opened: unsent again, for a retry."""
        if attachments:
            await self._store.unbind(owner_id, [a.id for a in attachments], conversation_id)

    # Prompts

    async def prompt_files(
        self,
        owner_id: ObjectId,
        turns: Sequence[tuple[MessageRole, Sequence[ObjectId]]],
        model: ModelInfo | None,
    ) -> list[tuple[PromptFile, ...]]:
        """Each turn's files, as the prompt describes them (no bytes yet). A model that takes no
        images gets none from earlier turns (the new message's were refused before)."""
        wanted = {oid for role, ids in turns if role is MessageRole.USER for oid in ids}
        found = await self._store.get_many(owner_id, wanted) if wanted else {}
        takes_images = model is None or "image" in model.input_modalities
        return [
            tuple(
                prompt_file(found[oid])
                for oid in ids
                if oid in found and (takes_images or found[oid].kind is not AttachmentKind.IMAGE)
            )
            if role is MessageRole.USER
            else ()
            for role, ids in turns
        ]

    async def load(self, request: ChatRequest) -> ChatRequest:
        """The files of the turns the budget kept, read and encoded off the event loop, within
        two bounds: images and PDFs up to `MAX_PROMPT_FILE_BYTES` in all (the newest turns'
        first; an older file over it is named instead of sent), and each text file cut to its
        share of the token budget (so a 20 MiB log costs a budget's worth, not 20 MiB)."""
        if not any(message.files for message in request.messages):
            return request
        messages = list(request.messages)
        room = MAX_PROMPT_FILE_BYTES
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            texts = sum(1 for file in message.files if file.kind is AttachmentKind.TEXT)
            share = max(
                self._settings.prompt_token_budget * CHARS_PER_TOKEN // max(texts, 1),
                MIN_TEXT_CHARS,
            )
            files = []
            for file in message.files:
                if file.kind is AttachmentKind.TEXT:
                    files.append(await self._loaded_text(file, share))
                elif file.size > room:
                    files.append(left_out(file))
                else:
                    room -= file.size
                    files.append(await self._loaded(file))
            messages[index] = replace(message, files=tuple(files))
        return replace(request, messages=messages, pdf_engine=self._settings.pdf_engine.value)

    async def _loaded(self, file: PromptFile) -> PromptFile:
        try:
            data = b"".join([chunk async for chunk in await self._store.open_file(file.file_id)])
        except FileNotFoundError:  # deleted meanwhile: the model hears of it
            return deleted(file)
        return replace(file, content=await asyncio.to_thread(data_url, file, data))

    async def _loaded_text(self, file: PromptFile, max_chars: int) -> PromptFile:
        """The start of a text file: only the bytes `max_chars` characters can take are read."""
        wanted = max_chars * MAX_UTF8_BYTES
        pieces: list[bytes] = []
        read = 0
        try:
            async with contextlib.aclosing(await self._store.open_file(file.file_id)) as chunks:
                async for chunk in chunks:
                    pieces.append(chunk)
                    read += len(chunk)
                    if read >= wanted:
                        break
        except FileNotFoundError:
            return deleted(file)
        text = await asyncio.to_thread(text_start, b"".join(pieces), max_chars, file.size)
        return replace(file, content=text)

    # The sweep of unsent uploads

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="attachment-sweep")

    async def close(self) -> None:
        if self._sweeper is not None:
            await end_tasks([self._sweeper], "upload sweeps")

    async def sweep(self) -> int:
        """Delete uploads older than a day that no message carries."""
        return await self._store.delete_unsent_before(utc_now() - UNSENT_UPLOAD_LIFETIME)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if deleted := await self.sweep():
                    logger.info("deleted %d uploads never sent", deleted)
            except Exception:
                logger.warning("the sweep of unsent uploads failed", exc_info=True)
            await asyncio.sleep(SWEEP_INTERVAL)


def prompt_file(attachment: AttachmentRecord) -> PromptFile:
    return PromptFile(
        file_id=attachment.file_id,
        kind=attachment.kind,
        filename=attachment.filename,
        media_type=attachment.media_type,
        size=attachment.size,
        width=attachment.width,
        height=attachment.height,
        page_count=attachment.page_count,
    )


def data_url(file: PromptFile, data: bytes) -> str:
    return f"data:{file.media_type};base64,{base64.b64encode(data).decode('ascii')}"


def text_start(data: bytes, max_chars: int, size: int) -> str:
    """At most `max_chars` characters of `data` (a file of `size` bytes), saying where it was
    cut. A character split by the read's end is left out."""
    text = data.decode("utf-8", errors="ignore")
    if len(text) <= max_chars and len(data) >= size:
        return text
    return f"{text[:max_chars]}\n[… cut here: the first {max_chars} characters of {size} bytes]"


def deleted(file: PromptFile) -> PromptFile:
    return replace(file, kind=AttachmentKind.TEXT, content="(this file was deleted)")


def left_out(file: PromptFile) -> PromptFile:
    """What the model is told of a file the prompt has no room for."""
    return replace(
        file,
        kind=AttachmentKind.TEXT,
        content=(
            f"({file.media_type}, {file.size} bytes, not sent: a prompt carries at most "
            f"{MAX_PROMPT_FILE_BYTES // 1_048_576} MiB of images and PDFs)"
        ),
    )


def clean_filename(filename: str | None) -> str:
    """The name without any path, control characters or slashes, at most 255 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = UNSAFE_FILENAME_CHARACTERS.sub("", name).strip()
    return name[:MAX_FILENAME_CHARS] or "file"


def _size_of(upload: Upload) -> int:
    upload.file.seek(0, 2)
    return upload.file.tell()


async def _contents(inspected: InspectedFile, source: BinaryIO) -> AsyncIterator[bytes]:
    """What to store: the image without its metadata, or the upload as it came, in chunks."""
    if inspected.stripped is not None:
        view = memoryview(inspected.stripped)
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])
        return
    await asyncio.to_thread(source.seek, 0)
    while chunk := await asyncio.to_thread(source.read, CHUNK_BYTES):
        yield chunk
