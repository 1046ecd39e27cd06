"""`exportAccount`: all of a user's data as one zip archive, written in the background and
downloaded through a signed URL until it expires (`GQL_CHAT_EXPORT_TTL`).

The archive holds `index.json` (the account, and where each conversation was: its folder,
preset, pinned and archived flags), `conversations/<id>.json` (each conversation with every
branch, in `exportConversation`'s JSON: `importConversations(format: GQL_CHAT_JSON)` reads the
archive back), `folders.json`, `presets.json`, `feedback.json`, `attachments.json` and each
file's bytes under `attachments/<id>/<filename>`. It is built in a temporary file (the bytes
stream through, a GridFS chunk at a time), then stored in GridFS; deleting the account deletes
it, and an hourly sweep deletes expired ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import zipfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import IO, Any

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.clock import iso_utc, utc_now
from gql_chat.domain.folders import FolderRecord
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.jobs import EXPIRED, ExportJobRecord, JobStatus
from gql_chat.domain.messages import MessageRecord
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.errors import NotFound, RateLimited
from gql_chat.services.file_urls import FileUrls
from gql_chat.services.reports import ExportFormat, ReportService
from gql_chat.services.tasks import end_tasks
from gql_chat.store.database import Database

logger = logging.getLogger(__name__)

JOB_NOT_FOUND = "Export job not found."
REPLACED = "A newer export replaced this archive."
JOB_TIMEOUT = 30 * 60.0
SWEEP_INTERVAL = 3600.0
MAX_RUNNING = 2
"""Exports building at once in a process (each holds a temporary file)."""
MAX_WAITING = 20
"""Exports started in a process and not finished (one per user): past it, one is refused."""
SPOOL_BYTES = 8 * 1_048_576
"""Archives up to this size are built in memory; larger ones on disk."""


@dataclass(frozen=True, slots=True)
class ArchiveDownload:
    job: ExportJobRecord
    chunks: AsyncGenerator[bytes]


class ExportService:
    def __init__(
        self, settings: Settings, database: Database, reports: ReportService, urls: FileUrls
    ) -> None:
        self._settings = settings
        self._db = database
        self._reports = reports
        self._urls = urls
        self._running: dict[asyncio.Task[None], ExportJobRecord] = {}
        """Exports being written here, and their jobs."""
        self._building = asyncio.Semaphore(MAX_RUNNING)
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="archive-sweep")

    async def close(self) -> None:
        tasks = [*self._running, *([self._sweeper] if self._sweeper else [])]
        await end_tasks(tasks, "export tasks")

    async def export(self, owner_id: ObjectId) -> ExportJobRecord:
        """A new job, started now (its archive follows in the background); the user's export
        being written, if there is one. A user keeps one archive: a new one replaces it."""
        for job in self._running.values():
            if job.owner_id == owner_id:
                return await self.get(owner_id, str(job.id))
        if len(self._running) >= MAX_WAITING:
            raise RateLimited(retry_after=30, message="Too many exports are waiting; try later.")
        job = await self._db.jobs.add_export(owner_id)
        task = asyncio.create_task(self._run(job), name=f"export-{job.id}")
        self._running[task] = job
        task.add_done_callback(lambda done: self._running.pop(done, None))
        return job

    async def get(self, owner_id: ObjectId, job_id: str) -> ExportJobRecord:
        oid = parse_object_id(job_id)
        job = await self._db.jobs.get_export(owner_id, oid) if oid is not None else None
        if job is None:
            raise NotFound(JOB_NOT_FOUND)
        return job.as_of(utc_now())

    def url(self, base_url: str, job: ExportJobRecord) -> str | None:
        """The archive's signed download URL, once it is written (and until it expires)."""
        if job.status is not JobStatus.DONE:
            return None
        return self._urls.sign_archive(base_url, job.id, job.owner_id, utc_now())

    async def download(
        self, job_id: str, user: str, expires: str, signature: str
    ) -> ArchiveDownload:
        """Raises `BadSignature` (403) or `NotFound` (404: gone, expired, another's)."""
        oid, owner_id = self._urls.verify_archive(job_id, user, expires, signature, utc_now())
        job = await self.get(owner_id, str(oid))
        if job.status is not JobStatus.DONE or job.file_id is None:
            raise NotFound(JOB_NOT_FOUND)
        try:
            chunks = await self._db.archives.open(job.file_id)
        except FileNotFoundError:
            raise NotFound(JOB_NOT_FOUND) from None
        return ArchiveDownload(job, chunks)

    async def sweep(self) -> int:
        """Delete the archives past their time; how many."""
        expired = await self._db.jobs.expired_exports(utc_now())
        for job in expired:
            if job.file_id is not None:
                await self._db.archives.delete(job.file_id)
            await self._db.jobs.forget_file(job.id, EXPIRED)
        return len(expired)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if deleted := await self.sweep():
                    logger.info("deleted %d expired account archives", deleted)
            except Exception:
                logger.warning("the sweep of expired account archives failed", exc_info=True)
            await asyncio.sleep(SWEEP_INTERVAL)

    async def _run(self, job: ExportJobRecord) -> None:
        try:
            async with asyncio.timeout(JOB_TIMEOUT), self._building:
                await self._db.jobs.progress(job.id, {"status": JobStatus.RUNNING.value})
                with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
                    await self._build(job.owner_id, job.id, spool)
                    size = spool.tell()
                    spool.seek(0)
                    file_id = await self._db.archives.write(job.owner_id, job.id, spool)
                if await self._db.users.get(job.owner_id) is None:  # deleted meanwhile
                    await self._db.archives.delete(file_id)
                    return
                now = utc_now()
                await self._db.jobs.finish(
                    job.id,
                    {
                        "status": JobStatus.DONE.value,
                        "file_id": file_id,
                        "size": size,
                        "expires_at": now + self._settings.export_ttl,
                    },
                    now,
                )
                for older in await self._db.jobs.older_archives(job.owner_id, job.id):
                    if older.file_id is not None:
                        await self._db.archives.delete(older.file_id)
                    await self._db.jobs.forget_file(older.id, REPLACED)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("an account export failed", extra={"job_id": str(job.id)})
            with contextlib.suppress(Exception):
                await self._db.jobs.finish(
                    job.id,
                    {"status": JobStatus.FAILED.value, "error": "The export failed; try again."},
                    utc_now(),
                )

    async def _build(self, owner_id: ObjectId, job_id: ObjectId, out: IO[bytes]) -> None:
        """Reads in the event loop, compression and writes in a worker thread (zlib lets the
        loop run meanwhile), one entry at a time."""
        db = self._db
        user = await db.users.get(owner_id)
        if user is None:
            raise NotFound("User not found.")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

            async def put(name: str, value: Any) -> None:
                data = value if isinstance(value, bytes) else _json(value)
                await asyncio.to_thread(archive.writestr, name, data)

            conversations = await db.conversations.all_for_owner(owner_id)
            for conversation in conversations:
                exported = await self._reports.export(
                    owner_id, str(conversation.id), ExportFormat.JSON, all_branches=True
                )
                await put(f"conversations/{conversation.id}.json", exported.encode())
                await db.jobs.progress(job_id, {})  # alive
            folders = await db.folders.list_all(owner_id)
            await put("folders.json", [_folder(f) for f in folders])
            presets = await db.llm_configs.list_all(owner_id)
            await put("presets.json", [_preset(p) for p in presets])
            rated = await db.messages.feedback_of_owner(owner_id)
            await put("feedback.json", [_feedback(m) for m in rated])
            files = await db.attachments.all_for_owner(owner_id)
            await put("attachments.json", [_attachment(a) for a in files])
            for attachment in files:
                name = f"attachments/{attachment.id}/{_safe_name(attachment.filename)}"
                try:
                    chunks = await db.attachments.open_file(attachment.file_id)
                except FileNotFoundError:
                    continue  # deleted since it was listed
                entry = await asyncio.to_thread(archive.open, name, "w")
                try:
                    async for chunk in chunks:
                        await asyncio.to_thread(entry.write, chunk)
                finally:
                    await asyncio.to_thread(entry.close)
            await put(
                "index.json",
                {
                    "format": "gql_chat account export",
                    "version": 1,
                    "exportedAt": iso_utc(utc_now()),
                    "account": {
                        "email": user.email,
                        "displayName": user.display_name,
                        "createdAt": iso_utc(user.created_at),
                    },
                    "conversations": [
                        {
                            "file": f"conversations/{c.id}.json",
                            "id": str(c.id),
                            "title": c.title,
                            "folderId": _id(c.folder_id),
                            "llmConfigId": _id(c.llm_config_id),
                            "pinned": c.pinned,
                            "archived": c.archived,
                        }
                        for c in conversations
                    ],
                },
            )


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode()


def _id(value: ObjectId | None) -> str | None:
    return str(value) if value is not None else None


def _safe_name(filename: str) -> str:
    """A stored file name as one archive path segment (no directories, nothing hidden)."""
    name = filename.replace("/", "_").replace("\\", "_").lstrip(".")
    return name or "file"


def _folder(folder: FolderRecord) -> dict[str, Any]:
    return {
        "id": str(folder.id),
        "name": folder.name,
        "parentId": _id(folder.parent_id),
        "position": folder.position,
        "createdAt": iso_utc(folder.created_at),
    }


def _preset(preset: LlmConfigRecord) -> dict[str, Any]:
    return {
        "id": str(preset.id),
        "name": preset.name,
        "model": preset.model,
        "systemPrompt": preset.system_prompt,
        "temperature": preset.temperature,
        "topP": preset.top_p,
        "maxTokens": preset.max_tokens,
        "reasoningEffort": preset.reasoning_effort.value if preset.reasoning_effort else None,
        "isDefault": preset.is_default,
        "createdAt": iso_utc(preset.created_at),
    }


def _feedback(message: MessageRecord) -> dict[str, Any]:
    feedback = message.feedback
    assert feedback is not None  # only rated replies are listed
    return {
        "messageId": str(message.id),
        "conversationId": str(message.conversation_id),
        "rating": feedback.rating.value if feedback.rating else None,
        "comment": feedback.comment,
        "updatedAt": iso_utc(feedback.updated_at),
    }


def _attachment(attachment: AttachmentRecord) -> dict[str, Any]:
    return {
        "id": str(attachment.id),
        "file": f"attachments/{attachment.id}/{_safe_name(attachment.filename)}",
        "filename": attachment.filename,
        "mediaType": attachment.media_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "conversationId": _id(attachment.conversation_id),
        "createdAt": iso_utc(attachment.created_at),
    }
