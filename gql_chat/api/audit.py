"""The audit log as admins read it: `auditLog`, newest first, filtered by user, action and time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_chat.api.context import Info
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAdmin
from gql_chat.domain.audit import AuditAction as AuditActionValue
from gql_chat.domain.audit import AuditEntry as AuditEntryRecord
from gql_chat.domain.audit import AuditOutcome as AuditOutcomeValue

AuditAction = strawberry.enum(AuditActionValue, name="AuditAction")
AuditOutcome = strawberry.enum(AuditOutcomeValue, name="AuditOutcome")


@strawberry.type(description="A name and value saying more about an audit record.")
class AuditDetail:
    name: str
    value: str


@strawberry.type(description="One security-relevant or administrative action.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    action: AuditAction  # type: ignore[valid-type]
    outcome: AuditOutcome  # type: ignore[valid-type]
    actor_id: strawberry.ID | None = strawberry.field(
        description="Who acted; null when nobody was signed in, or for the command line."
    )
    subject_id: strawberry.ID | None = strawberry.field(description="The account acted on.")
    client_ip: str | None
    request_id: str | None = strawberry.field(
        description="The X-Request-ID of the request, as in the server's log lines."
    )
    details: list[AuditDetail]

    @classmethod
    def of(cls, entry: AuditEntryRecord) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            at=entry.at,
            action=entry.action,
            outcome=entry.outcome,
            actor_id=strawberry.ID(str(entry.actor_id)) if entry.actor_id else None,
            subject_id=strawberry.ID(str(entry.subject_id)) if entry.subject_id else None,
            client_ip=entry.client_ip,
            request_id=entry.request_id,
            details=[AuditDetail(name=k, value=v) for k, v in sorted(entry.details.items())],
        )


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description=(
            "Admins only: the audit log, newest first; `userId`: records by or about that "
            "account; `from` (inclusive) and `to` (exclusive) bound the time."
        ),
        permission_classes=[IsAdmin],
    )
    async def audit_log(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
        action: AuditAction | None = None,  # type: ignore[valid-type]
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> AuditEntryConnection:
        page = await info.context.services.audit.page(
            await info.context.require_user(), first, after, user_id, action, from_, to
        )
        return AuditEntryConnection(
            edges=[AuditEntryEdge(cursor=c, node=AuditEntry.of(e)) for c, e in page.items],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )
