"""Importing conversations from a file: ChatGPT's `conversations.json`, or our own JSON export
(one conversation, a list of them, or the `exportAccount` archive).

The mutation reads the upload, hashes it and answers with a job at once; the job runs in this
process: it decodes and reads the file off the event loop, then stores its conversations one
by one (each whole: its messages, then the conversation, which makes them visible), announcing
each on `userEvents` and reporting progress on the job. Every conversation is stored under the
key of its place in the file, so a file sent again (or after an interrupted job) adds nothing
twice. Broken conversations are reported one by one; the rest is imported."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from bson import ObjectId
from starlette.datastructures import UploadFile

from gql_chat.config import Settings
from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.clock import utc_now
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.jobs import (
    STALE_AFTER,
    ImportFormat,
    ImportJobRecord,
    ImportProblem,
    JobStatus,
)
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus, delta_end
from gql_chat.errors import BadUserInput, DomainError, NotFound, RateLimited
from gql_chat.imports.chatgpt import parse_chatgpt
from gql_chat.imports.gql_chat_json import parse_gql_chat_json
from gql_chat.imports.json_stream import decode, elements
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedFile,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.tasks import end_tasks
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

logger = logging.getLogger(__name__)

JOB_NOT_FOUND = "Import job not found."
PROGRESS_EVERY = 0.5
"""Seconds between two progress writes of a running job."""
JOB_TIMEOUT = 30 * 60.0
"""The longest one import may run."""
ARCHIVE_EXPANSION = 2
"""An archive's conversations may unpack to at most this many times the upload limit (a zip
bomb does not; what they decode to is about 20 times that again)."""
ARCHIVE_CONVERSATIONS = "conversations/"
ARCHIVE_FILES = "attachments"
ARCHIVE_MAGIC = b"PK\x03\x04"
UNREADABLE_ZIP = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
)
"""What `zipfile` raises for a damaged, encrypted or oddly compressed entry."""
IMPORTED_TITLE_SOURCE = "imported"


class ImportService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        events: UserEventBus,
        attachments: AttachmentService,
    ) -> None:
        self._settings = settings
        self._attachments = attachments
        self._db = database
        self._jobs = database.jobs
        self._events = events
        self._limits = ImportLimits(
            max_conversations=settings.import_max_conversations,
            max_messages=settings.import_max_messages,
            max_message_chars=max(settings.max_reply_chars, settings.max_message_chars),
        )
        self._running: dict[asyncio.Task[None], ObjectId] = {}
        """Imports started here and not ended, and whose they are."""
        self._one_at_a_time = asyncio.Semaphore(1)
        """Imports run one after another in a process: each holds its decoded file."""

    async def start(self, owner_id: ObjectId, data: bytes, fmt: ImportFormat) -> ImportJobRecord:
        """A job for this file: the one that imported it before when it succeeded or still
        runs (nothing is imported twice anyway), else a new one, started now."""
        if not data:
            raise BadUserInput("file", "The file is empty.")
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        earlier = await self._jobs.latest_import_of(owner_id, fmt, sha256)
        if earlier is not None:
            current = earlier.as_of(utc_now())
            if current.status is not JobStatus.FAILED:
                return current
        if owner_id in self._running.values():
            raise RateLimited(retry_after=10, message="An import of yours is running; wait for it.")
        if len(self._running) >= MAX_WAITING_JOBS:
            raise RateLimited(retry_after=10, message="Too many imports are waiting; try later.")
        job = await self._jobs.add_import(owner_id, fmt, sha256)
        task = asyncio.create_task(self._run(job, data), name=f"import-{job.id}")
        self._running[task] = owner_id
        task.add_done_callback(lambda done: self._running.pop(done, None))
        return job

    async def get(self, owner_id: ObjectId, job_id: str) -> ImportJobRecord:
        oid = parse_object_id(job_id)
        job = await self._jobs.get_import(owner_id, oid) if oid is not None else None
        if job is None:
            raise NotFound(JOB_NOT_FOUND)
        return job.as_of(utc_now())

    async def close(self) -> None:
        """At shutdown: running imports stop (their jobs read as interrupted soon after; what
        they stored stays, and sending the file again completes it)."""
        await end_tasks(self._running, "import tasks")

    async def _run(self, job: ImportJobRecord, data: bytes) -> None:
        try:
            async with asyncio.timeout(JOB_TIMEOUT):
                await self._turn(job)
                try:
                    await self._jobs.progress(job.id, {"status": JobStatus.RUNNING.value})
                    await self._import(job, data)
                finally:
                    self._one_at_a_time.release()
        except asyncio.CancelledError:
            raise
        except _UnreadableFile as exc:
            await self._fail(job, str(exc))
        except TimeoutError:
            await self._fail(job, "The import took too long; send the file again to go on.")
        except Exception:
            logger.exception("an import failed", extra={"job_id": str(job.id)})
            await self._fail(job, "The import failed; send the file again to go on.")

    async def _turn(self, job: ImportJobRecord) -> None:
        """Wait for the import before it to end, saying meanwhile that this job is alive (a
        job nobody touches for `STALE_AFTER` reads as interrupted)."""
        while True:
            try:
                async with asyncio.timeout(STALE_AFTER.total_seconds() / 4):
                    await self._one_at_a_time.acquire()
                    return
            except TimeoutError:
                await self._jobs.progress(job.id, {})

    async def _fail(self, job: ImportJobRecord, error: str) -> None:
        with contextlib.suppress(Exception):
            await self._jobs.finish(
                job.id, {"status": JobStatus.FAILED.value, "error": error}, utc_now()
            )

    async def _import(self, job: ImportJobRecord, data: bytes) -> None:
        read = await asyncio.to_thread(self._read, job.format, data)
        items = read.items
        files = _ArchivedFiles(
            self._attachments, self._settings.max_upload_bytes, job.owner_id, data, read.files
        )
        counts = {"total": len(items), "done": 0, "imported": 0, "skipped": 0, "placeholders": 0}
        await self._jobs.progress(job.id, counts)
        prefix = f"{job.sha256}:{job.format.value}:"
        seen = await self._db.conversations.imported_keys(job.owner_id, prefix)
        problems: list[ImportProblem] = []
        last_report = time.monotonic()
        ids = _ObjectIds()
        for item in items:
            if isinstance(item, ConversationError):
                problems.append(ImportProblem(item.index, item.title, item.message))
            elif f"{prefix}{item.index}" in seen:
                counts["skipped"] += 1
            else:
                stored = await self._store(job.owner_id, item, f"{prefix}{item.index}", ids, files)
                counts["imported" if stored is not None else "skipped"] += 1
                counts["placeholders"] += stored or 0
            counts["done"] += 1
            await asyncio.sleep(0)  # the embedded store never yields on its own
            if time.monotonic() - last_report >= PROGRESS_EVERY:
                last_report = time.monotonic()
                await self._jobs.progress(job.id, counts)
                await self._jobs.add_problems(job.id, problems)
                problems = []
        await self._jobs.add_problems(job.id, problems)
        await self._jobs.finish(job.id, {**counts, "status": JobStatus.DONE.value}, utc_now())

    def _read(self, fmt: ImportFormat, data: bytes) -> _ReadFile:
        """The file's conversations (in a worker thread: decoding a big file takes a while),
        each decoded, read and dropped before the next (a file's conversations as JSON values
        take about 20 times the file), and for an account archive, where each file's bytes
        are in it. Raises `_UnreadableFile` for a file that is no export of that format."""
        limits = self._limits
        try:
            if fmt is ImportFormat.CHATGPT or data[:4] != ARCHIVE_MAGIC:
                parse = parse_chatgpt if fmt is ImportFormat.CHATGPT else parse_gql_chat_json
                values = elements(data, limits.max_conversations)
                if values is None:  # not an array: one conversation (or a wrapper of them)
                    return _ReadFile(list(parse(decode(data, limits.max_conversations), limits)))
                return _ReadFile(_numbered(parse([value], limits) for value in values))
            return self._archive(data)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _UnreadableFile(_reason(exc)) from None

    def _archive(self, data: bytes) -> _ReadFile:
        """The conversations of an `exportAccount` archive, an entry at a time, within bounds
        (what its entries unpack to, as read rather than as claimed, and how many
        conversations), and its files' entries by id."""
        room = ARCHIVE_EXPANSION * self._settings.max_upload_bytes
        limit = self._limits.max_conversations
        too_many = f"The archive holds more than {limit} conversations; at most {limit} per import."
        batches: list[Iterable[ImportItem]] = []
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                listed = archive.namelist()
                names = [
                    n for n in listed if n.startswith(ARCHIVE_CONVERSATIONS) and n.endswith(".json")
                ]
                if len(names) > limit:
                    raise ValueError(too_many)
                for name in sorted(names):
                    with archive.open(name) as entry:
                        content = entry.read(room + 1)
                    room -= len(content)
                    if room < 0:
                        raise ValueError("The archive unpacks to more than this server reads.")
                    document = decode(content, limit)
                    parsed = parse_gql_chat_json(document, self._limits, with_files=True)
                    batches.append(list(parsed))
        except UNREADABLE_ZIP:
            raise ValueError("The archive cannot be read.") from None
        items = _numbered(batches)
        if len(items) > limit:
            raise ValueError(too_many)
        files = {
            parts[1]: name
            for name in listed
            if len(parts := name.split("/")) == 3 and parts[0] == ARCHIVE_FILES and parts[2]
        }
        return _ReadFile(items, files)

    async def _store(
        self,
        owner_id: ObjectId,
        item: ImportedConversation,
        key: str,
        ids: _ObjectIds,
        files: _ArchivedFiles,
    ) -> int | None:
        """Its files (from an archive) and messages first, then the conversation (which makes
        them visible), then the files are bound to it. How many placeholders it holds; None
        when this key was stored meanwhile (the same file, sent twice at once)."""
        now = utc_now()
        placeholders = item.placeholders
        restored: dict[ObjectId, AttachmentRecord] = {}
        created = item.created_at or _first_time(item) or now
        conversation_id = ids.at(created)
        message_ids: dict[str, ObjectId] = {}
        messages: list[MessageRecord] = []
        for message in item.messages:
            at = message.created_at or created
            message_id = ids.at(at)
            message_ids[message.key] = message_id
            parent_id = message_ids[message.parent_key] if message.parent_key else None
            record = _message(owner_id, conversation_id, (message_id, parent_id), message, at)
            if message.files:
                found = [(f, await files.restore(f, key)) for f in message.files]
                kept = [a for _, a in found if a is not None]
                missing = [f"[attachment {f.filename} not imported]" for f, a in found if a is None]
                restored.update((a.id, a) for a in kept)
                placeholders += len(missing)
                record = dataclasses.replace(
                    record,
                    attachment_ids=tuple(a.id for a in kept),
                    content="\n\n".join(p for p in (record.content, "\n".join(missing)) if p),
                )
            messages.append(record)
        last = max((m.created_at for m in messages), default=None)
        conversation = ConversationRecord(
            id=conversation_id,
            owner_id=owner_id,
            title=item.title,
            title_source=IMPORTED_TITLE_SOURCE,
            folder_id=None,
            llm_config_id=None,
            pinned=False,
            archived=False,
            created_at=created,
            updated_at=item.updated_at or last or created,
            last_message_at=last,
            active_leaf_id=message_ids.get(item.active_leaf_key or ""),
        )
        await self._db.messages.add_many(messages)
        try:
            inserted = await self._db.conversations.insert_imported(conversation, key)
        except BaseException:  # failed, or cancelled at shutdown: no hidden messages stay
            with contextlib.suppress(Exception):
                await self._db.messages.delete_ids(owner_id, [m.id for m in messages])
            raise
        if not inserted:
            await self._db.messages.delete_ids(owner_id, [m.id for m in messages])
            return None  # its restored files stay unsent: the sweep of those deletes them
        await self._attachments.bind(owner_id, list(restored.values()), conversation.id)
        self._events.publish(
            owner_id,
            UserEvent(UserEventKind.CONVERSATION_CREATED, conversation_id=conversation.id),
        )
        return placeholders


@dataclass(frozen=True, slots=True)
class _ReadFile:
    items: list[ImportItem]
    files: dict[str, str] = field(default_factory=dict)
    """An archive's files: the entry holding each one's bytes, by its id in the archive."""


class _ArchivedFiles:
    """Files of an account archive, stored again as the user's uploads as their messages are
    imported (checked by content and counted against the quota like any upload)."""

    def __init__(
        self,
        attachments: AttachmentService,
        limit: int,
        owner_id: ObjectId,
        data: bytes,
        entries: dict[str, str],
    ) -> None:
        self._attachments = attachments
        self._limit = limit
        self._owner_id = owner_id
        self._archive = zipfile.ZipFile(io.BytesIO(data)) if entries else None
        self._entries = entries
        self._restored: dict[str, tuple[str, AttachmentRecord | None]] = {}
        """Each file once, for the conversation that first listed it."""

    async def restore(self, file: ImportedFile, conversation: str) -> AttachmentRecord | None:
        """The file stored anew, once (a file listed again in the same conversation is the
        same upload; in another one, a note); None when the archive lacks it or it is refused
        (too large, not a kind we take, over the quota)."""
        if (earlier := self._restored.get(file.key)) is not None:
            first_conversation, record = earlier
            return record if first_conversation == conversation else None
        record = await self._restore(file)
        self._restored[file.key] = (conversation, record)
        return record

    async def _restore(self, file: ImportedFile) -> AttachmentRecord | None:
        entry = self._entries.get(file.key)
        if entry is None or self._archive is None:
            return None
        archive = self._archive

        def read() -> bytes:
            with archive.open(entry) as opened:
                return opened.read(self._limit + 1)

        try:
            data = await asyncio.to_thread(read)
        except UNREADABLE_ZIP:
            return None
        if len(data) > self._limit:
            return None
        upload = UploadFile(io.BytesIO(data), size=len(data), filename=file.filename)
        try:
            return await self._attachments.upload(self._owner_id, upload)
        except DomainError:
            return None


MAX_WAITING_JOBS = 5
"""Imports started in a process and not yet finished (each holds its file, up to the upload
limit): past it, a new one is refused. A user has one at a time."""


class _UnreadableFile(Exception):
    """The file is no export of the format asked for: the job fails with this reason."""


class _ObjectIds:
    """Ids for imported messages that keep their time order (a conversation's branches and
    siblings are ordered by id): each carries its message's time, and a counter orders those
    of one second in file order."""

    def __init__(self) -> None:
        self._random = os.urandom(5)
        self._counter = 0

    def at(self, when: datetime) -> ObjectId:
        self._counter = (self._counter + 1) % 0xFFFFFF
        seconds = min(max(int(when.timestamp()), 0), 0xFFFFFFFF)
        return ObjectId(
            seconds.to_bytes(4, "big") + self._random + self._counter.to_bytes(3, "big")
        )


def _message(
    owner_id: ObjectId,
    conversation_id: ObjectId,
    ids: tuple[ObjectId, ObjectId | None],
    message: ImportedMessage,
    at: datetime,
) -> MessageRecord:
    """A reply's text and reasoning replay as one delta each (`messageStream` on it)."""
    ends: list[int] = []
    if message.role is MessageRole.ASSISTANT:
        if message.reasoning:
            ends.append(delta_end(len(message.reasoning), True))
        if message.content:
            ends.append(delta_end(len(message.content), False))
    message_id, parent_id = ids
    return MessageRecord(
        id=message_id,
        owner_id=owner_id,
        conversation_id=conversation_id,
        role=message.role,
        content=message.content,
        status=MessageStatus.COMPLETE,
        model=message.model,
        parent_id=parent_id,
        seq=len(ends),
        seq_ends=tuple(ends),
        usage=None,
        error_code=None,
        error_message=None,
        client_message_id=None,
        created_at=at,
        updated_at=at,
        reasoning=message.reasoning,
    )


def _numbered(batches: Iterable[Iterable[ImportItem]]) -> list[ImportItem]:
    """The items of conversations read one by one (each numbered 0), numbered in file order."""
    return [
        dataclasses.replace(item, index=index)
        for index, item in enumerate(item for batch in batches for item in batch)
    ]


def _first_time(item: ImportedConversation) -> datetime | None:
    return min((m.created_at for m in item.messages if m.created_at), default=None)


def _reason(error: ValueError) -> str:
    """What to tell the user about a file that cannot be read (the decoder's message names
    where it stopped)."""
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        return f"The file is not valid JSON (UTF-8): {error}."
    return str(error)
