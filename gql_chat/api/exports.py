"""Account exports in GraphQL: `exportAccount` starts a background job; `exportJob` reports on
it, with the archive's signed download `url` once it is written."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_chat.api.attachments import public_base_url
from gql_chat.api.context import Info
from gql_chat.api.imports import JobStatus
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.jobs import ExportJobRecord


@strawberry.type(description="An account export: one zip archive of all of the user's data.")
class ExportJob:
    id: strawberry.ID
    status: JobStatus  # type: ignore[valid-type]
    size: int | None = strawberry.field(description="The archive's bytes, once written.")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = strawberry.field(
        description="When the archive is deleted (GQL_CHAT_EXPORT_TTL after it was written)."
    )
    record: strawberry.Private[ExportJobRecord]

    @classmethod
    def of(cls, job: ExportJobRecord) -> ExportJob:
        return cls(
            id=strawberry.ID(str(job.id)),
            status=job.status,
            size=job.size,
            error=job.error,
            created_at=job.created_at,
            finished_at=job.finished_at,
            expires_at=job.expires_at,
            record=job,
        )

    @strawberry.field(
        description=(
            "A signed download URL for the archive once DONE (valid for GQL_CHAT_FILE_URL_TTL; "
            "ask again for a fresh one); null before."
        )
    )
    def url(self, info: Info) -> str | None:
        return info.context.services.exports.url(public_base_url(info), self.record)


@strawberry.type
class ExportQuery:
    @strawberry.field(
        description="An account export's progress, and its archive's URL once written.",
        permission_classes=[IsAuthenticated],
    )
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJob:
        job = await info.context.services.exports.get(await info.context.owner_id(), id)
        return ExportJob.of(job)


@strawberry.type
class ExportMutation:
    @strawberry.mutation(
        description=(
            "Starts writing one zip archive of all your data: every conversation with every "
            "branch (as exportConversation's JSON, which importConversations reads back), "
            "folders, presets, feedback and files. Poll exportJob for its URL."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def export_account(self, info: Info) -> ExportJob:
        job = await info.context.services.exports.export(await info.context.owner_id())
        return ExportJob.of(job)
