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
import hashlib
import io
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.jobs import ImportFormat, ImportJobRecord, ImportProblem, JobStatus
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus, delta_end
from gql_chat.errors import BadUserInput, NotFound, RateLimited
from gql_chat.imports.chatgpt import parse_chatgpt
from gql_chat.imports.gql_chat_json import parse_gql_chat_json
from gql_chat.imports.json_stream import decode
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

logger = logging.getLogger(__name__)

JOB_NOT_FOUND = "Import job not found."
PROGRESS_EVERY = 0.5
"""Seconds between two progress writes of a running job."""
JOB_TIMEOUT = 30 * 60.0
"""The longest one import may run."""
ARCHIVE_EXPANSION = 20
"""An archive may unpack to at most this many times the upload limit (a zip bomb does not)."""
ARCHIVE_CONVERSATIONS = "conversations/"
IMPORTED_TITLE_SOURCE = "imported"


class ImportService:
    def __init__(self, settings: Settings, database: Database, events: UserEventBus) -> None:
        self._settings = settings
        self._db = database
        self._jobs = database.jobs
        self._events = events
        self._limits = ImportLimits(
            max_conversations=settings.import_max_conversations,
            max_messages=settings.import_max_messages,
            max_message_chars=max(settings.max_reply_chars, settings.max_message_chars),
        )
        self._running: set[asyncio.Task[None]] = set()
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
        if sum(1 for task in self._running if not task.done()) >= MAX_WAITING_JOBS:
            raise RateLimited(retry_after=10, message="Too many imports are waiting; try later.")
        job = await self._jobs.add_import(owner_id, fmt, sha256)
        task = asyncio.create_task(self._run(job, data), name=f"import-{job.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
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
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _run(self, job: ImportJobRecord, data: bytes) -> None:
        try:
            async with asyncio.timeout(JOB_TIMEOUT):
                async with self._one_at_a_time:
                    await self._jobs.progress(job.id, {"status": JobStatus.RUNNING.value})
                    await self._import(job, data)
        except asyncio.CancelledError:
            raise
        except _UnreadableFile as exc:
            await self._fail(job, str(exc))
        except TimeoutError:
            await self._fail(job, "The import took too long; send the file again to go on.")
        except Exception:
            logger.exception("an import failed", extra={"job_id": str(job.id)})
            await self._fail(job, "The import failed; send the file again to go on.")

    async def _fail(self, job: ImportJobRecord, error: str) -> None:
        with contextlib.suppress(Exception):
            await self._jobs.finish(
                job.id, {"status": JobStatus.FAILED.value, "error": error}, utc_now()
            )

    async def _import(self, job: ImportJobRecord, data: bytes) -> None:
        items = await asyncio.to_thread(self._read, job.format, data)
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
                stored = await self._store(job.owner_id, item, f"{prefix}{item.index}", ids)
                counts["imported" if stored else "skipped"] += 1
                counts["placeholders"] += item.placeholders if stored else 0
            counts["done"] += 1
            await asyncio.sleep(0)  # the embedded store never yields on its own
            if time.monotonic() - last_report >= PROGRESS_EVERY:
                last_report = time.monotonic()
                await self._jobs.progress(job.id, counts)
                await self._jobs.add_problems(job.id, problems)
                problems = []
        await self._jobs.add_problems(job.id, problems)
        await self._jobs.finish(job.id, {**counts, "status": JobStatus.DONE.value}, utc_now())

    def _read(self, fmt: ImportFormat, data: bytes) -> list[ImportItem]:
        """The file's conversations (in a worker thread: decoding a big file takes a while).
        Raises `_UnreadableFile` for a file that is no export of that format at all."""
        parse = parse_chatgpt if fmt is ImportFormat.CHATGPT else parse_gql_chat_json
        try:
            documents = list(self._documents(fmt, data))
            if len(documents) == 1:
                return list(parse(documents[0], self._limits))
            return list(parse(documents, self._limits))  # an archive: one per conversation
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are
            raise _UnreadableFile(_reason(exc)) from None

    def _documents(self, fmt: ImportFormat, data: bytes) -> Iterator[object]:
        if fmt is ImportFormat.GQL_CHAT_JSON and data[:4] == b"PK\x03\x04":
            yield from self._archive(data)
        else:
            yield decode(data, self._limits.max_conversations)

    def _archive(self, data: bytes) -> Iterator[object]:
        """The conversations of an `exportAccount` archive, within bounds: what it unpacks to
        (its entries' sizes as read, not as claimed) and how many it holds."""
        room = ARCHIVE_EXPANSION * self._settings.max_upload_bytes
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [
                    n
                    for n in archive.namelist()
                    if n.startswith(ARCHIVE_CONVERSATIONS) and n.endswith(".json")
                ]
                if len(names) > self._limits.max_conversations:
                    raise ValueError(
                        f"The archive holds {len(names)} conversations; at most "
                        f"{self._limits.max_conversations} are imported at once."
                    )
                for name in sorted(names):
                    with archive.open(name) as entry:
                        content = entry.read(room + 1)
                    room -= len(content)
                    if room < 0:
                        raise ValueError("The archive unpacks to more than this server reads.")
                    yield decode(content, self._limits.max_conversations)
        except zipfile.BadZipFile:
            raise ValueError("The file is not a readable archive.") from None

    async def _store(
        self, owner_id: ObjectId, item: ImportedConversation, key: str, ids: _ObjectIds
    ) -> bool:
        """Its messages first, then the conversation (which makes them visible); False when
        this key was stored meanwhile (the same file, sent twice at once)."""
        now = utc_now()
        created = item.created_at or _first_time(item) or now
        conversation_id = ids.at(created)
        message_ids: dict[str, ObjectId] = {}
        messages: list[MessageRecord] = []
        for message in item.messages:
            at = message.created_at or created
            message_id = ids.at(at)
            message_ids[message.key] = message_id
            parent_id = message_ids[message.parent_key] if message.parent_key else None
            messages.append(
                _message(owner_id, conversation_id, (message_id, parent_id), message, at)
            )
        last = max((m.created_at for m in messages), default=None)
        record = ConversationRecord(
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
        if not await self._db.conversations.insert_imported(record, key):
            await self._db.messages.delete_ids(owner_id, [m.id for m in messages])
            return False
        self._events.publish(
            owner_id, UserEvent(UserEventKind.CONVERSATION_CREATED, conversation_id=record.id)
        )
        return True


MAX_WAITING_JOBS = 20
"""Imports started in a process and not yet finished: past it, a new one is refused."""


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


def _first_time(item: ImportedConversation) -> datetime | None:
    return min((m.created_at for m in item.messages if m.created_at), default=None)


def _reason(error: ValueError) -> str:
    """What to tell the user about a file that cannot be read (the decoder's message names
    where it stopped)."""
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        return f"The file is not valid JSON (UTF-8): {error}."
    return str(error)
