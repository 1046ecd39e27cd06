"""Imports in GraphQL: `importConversations` (a file, as `uploadAttachment` sends one) starts a
background job; `importJob` reports on it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from gql_chat.api.context import Info
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.jobs import ImportFormat as ImportFormatValue
from gql_chat.domain.jobs import ImportJobRecord
from gql_chat.domain.jobs import JobStatus as JobStatusValue
from gql_chat.errors import BadUserInput

ImportFormat = strawberry.enum(
    ImportFormatValue,
    name="ImportFormat",
    description=(
        "CHATGPT: ChatGPT's conversations.json. GQL_CHAT_JSON: exportConversation's JSON (one "
        "conversation or a list of them), or the exportAccount archive."
    ),
)
JobStatus = strawberry.enum(JobStatusValue, name="JobStatus")


@strawberry.type(description="A conversation of the file that was not imported, and why.")
class ImportProblem:
    index: int = strawberry.field(description="Its place among the file's conversations, from 0.")
    title: str | None
    message: str


@strawberry.type
class ImportJob:
    id: strawberry.ID
    status: JobStatus  # type: ignore[valid-type]
    format: ImportFormat  # type: ignore[valid-type]
    total: int = strawberry.field(description="Conversations in the file (0 until it is read).")
    done: int = strawberry.field(description="Conversations handled so far, out of `total`.")
    imported_count: int
    skipped_count: int = strawberry.field(
        description="Conversations this file imported before: sending a file again adds none."
    )
    placeholder_count: int = strawberry.field(
        description="Parts that could not be represented (images, tool output), each kept as "
        "a short note in its message."
    )
    problems: list[ImportProblem] = strawberry.field(
        description="The conversations not imported (the first 1,000; `problemCount` counts all)."
    )
    problem_count: int
    error: str | None = strawberry.field(
        description="Why the whole job failed (a file that is not an export at all); null else."
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: ImportJobRecord) -> ImportJob:
        return cls(
            id=strawberry.ID(str(job.id)),
            status=job.status,
            format=job.format,
            total=job.total,
            done=job.done,
            imported_count=job.imported,
            skipped_count=job.skipped,
            placeholder_count=job.placeholders,
            problems=[
                ImportProblem(index=p.index, title=p.title, message=p.message) for p in job.problems
            ],
            problem_count=job.problem_count,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )


@strawberry.type
class ImportQuery:
    @strawberry.field(
        description="An import's progress and report.", permission_classes=[IsAuthenticated]
    )
    async def import_job(self, info: Info, id: strawberry.ID) -> ImportJob:
        job = await info.context.services.imports.get(await info.context.owner_id(), id)
        return ImportJob.of(job)


@strawberry.type
class ImportMutation:
    @strawberry.mutation(
        description=(
            "Imports conversations from a file (a GraphQL multipart request, as "
            "uploadAttachment), in the background: the job comes back at once (poll importJob; "
            "userEvents announces each conversation). Every branch is kept. The same file sent "
            "again imports nothing twice."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def import_conversations(
        self,
        info: Info,
        file: Annotated[Upload, strawberry.argument()],
        format: ImportFormat,  # type: ignore[valid-type]
    ) -> ImportJob:
        if not isinstance(file, UploadFile):
            raise BadUserInput(
                "file", "Send the file as a file part of a GraphQL multipart request."
            )
        owner_id = await info.context.owner_id()
        data = await asyncio.to_thread(file.file.read)  # spooled to disk past 1 MB
        job = await info.context.services.imports.start(owner_id, data, format)
        return ImportJob.of(job)
