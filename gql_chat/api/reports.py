"""Reports beyond the contract: `usageSummary` and `exportConversation`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_chat.api.context import Info
from gql_chat.api.numbers import finite_or_none, saturated
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.messages import UsageGroup as UsageGroupValue
from gql_chat.services.reports import ExportFormat as ExportFormatValue

UsageGroup = strawberry.enum(UsageGroupValue, name="UsageGroup")
ExportFormat = strawberry.enum(ExportFormatValue, name="ExportFormat")


@strawberry.type(description="Counts saturate at 2147483647 (GraphQL's Int is 32 bits).")
class UsageRow:
    key: str = strawberry.field(description="Model id, UTC day (YYYY-MM-DD) or conversation id.")
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


@strawberry.type
class ReportQuery:
    @strawberry.field(
        description=(
            "Assistant replies with usage in [from, to), grouped and summed in the database."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def usage_summary(
        self,
        info: Info,
        group_by: UsageGroup,  # type: ignore[valid-type]
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> list[UsageRow]:
        rows = await info.context.services.reports.usage_summary(
            await info.context.owner_id(), group_by, from_, to
        )
        return [
            UsageRow(
                key=row.key,
                messages=saturated(row.messages),
                prompt_tokens=saturated(row.prompt_tokens),
                completion_tokens=saturated(row.completion_tokens),
                cost=finite_or_none(row.cost) or 0.0,
            )
            for row in rows
        ]

    @strawberry.field(
        description=(
            "The active branch with roles, timestamps, models and usage; with `allBranches`, "
            "every branch (each message after its `parentId`). The JSON form is what "
            "importConversations(format: GQL_CHAT_JSON) reads back."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def export_conversation(
        self,
        info: Info,
        id: strawberry.ID,
        format: ExportFormat,  # type: ignore[valid-type]
        all_branches: bool = False,
    ) -> str:
        async with info.context.large_text():
            exported: str = await info.context.services.reports.export(
                await info.context.owner_id(),
                id,
                format,
                charge=info.context.charge_text,
                all_branches=all_branches,
            )
        return exported
