"""Background jobs a user starts and then watches: imports and account exports.

A job's document is its progress report. The process running it touches `updated_at` as it
goes; one whose process stopped (a restart, a crash) stops being touched, and reads as FAILED
once it is `STALE_AFTER` old, so nobody waits on it for ever and the file can be sent again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bson import ObjectId

STALE_AFTER = timedelta(minutes=2)
INTERRUPTED = "The job was interrupted (the server restarted); send the file again."


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


class ImportFormat(StrEnum):
    CHATGPT = "CHATGPT"
    GQL_CHAT_JSON = "GQL_CHAT_JSON"


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A conversation of the file that was not imported."""

    index: int
    title: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ImportJobRecord:
    id: ObjectId
    owner_id: ObjectId
    format: ImportFormat
    sha256: str
    status: JobStatus
    total: int
    done: int
    imported: int
    skipped: int
    """Conversations this file imported before (a file sent again adds no duplicates)."""
    placeholders: int
    problems: tuple[ImportProblem, ...]
    problem_count: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def as_of(self, now: datetime) -> ImportJobRecord:
        """As its reader should see it: FAILED when its process stopped running it."""
        if self.status.is_final or now - self.updated_at < STALE_AFTER:
            return self
        return replace(self, status=JobStatus.FAILED, error=INTERRUPTED)


@dataclass(frozen=True, slots=True)
class ExportJobRecord:
    """An `exportAccount` job: its archive, once written, until it expires."""

    id: ObjectId
    owner_id: ObjectId
    status: JobStatus
    file_id: ObjectId | None
    size: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None

    def as_of(self, now: datetime) -> ExportJobRecord:
        """FAILED when its process stopped writing it; an archive past its time is gone."""
        if self.status is JobStatus.DONE and self.expires_at is not None and now >= self.expires_at:
            return replace(self, status=JobStatus.FAILED, error=EXPIRED, file_id=None)
        if self.status.is_final or now - self.updated_at < STALE_AFTER:
            return self
        return replace(self, status=JobStatus.FAILED, error=INTERRUPTED_EXPORT)


EXPIRED = "The archive has expired; export again."
INTERRUPTED_EXPORT = "The export was interrupted (the server restarted); export again."
