"""Branches: `regenerateMessage`, `editMessage`, `switchBranch`."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gql_chat.api.context import Info
from gql_chat.api.conversations import ConversationType
from gql_chat.api.messages import SendMessagePayload
from gql_chat.api.permissions import IsAuthenticated


@strawberry.type
class BranchMutation:
    @strawberry.mutation(
        description=(
            "New assistant reply to the same user message, as a sibling; it becomes the active "
            "branch."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def regenerate_message(
        self, info: Info, message_id: strawberry.ID, model: str | None = None
    ) -> SendMessagePayload:
        result = await info.context.services.branching.regenerate(
            await info.context.owner_id(), message_id, model
        )
        return SendMessagePayload.of(result)

    @strawberry.mutation(
        description=(
            "New user message beside the edited one (a sibling) plus a fresh reply; it becomes "
            "the active branch."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def edit_message(
        self,
        info: Info,
        message_id: strawberry.ID,
        content: str,
        attachment_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(
                description="The edited message's files; omit (or null) to keep the original's."
            ),
        ] = None,
    ) -> SendMessagePayload:
        result = await info.context.services.branching.edit(
            await info.context.owner_id(), message_id, content, attachment_ids
        )
        return SendMessagePayload.of(result)

    @strawberry.mutation(
        description="Makes the branch through this message the active one.",
        permission_classes=[IsAuthenticated],
    )
    async def switch_branch(self, info: Info, message_id: strawberry.ID) -> ConversationType:
        conversation = await info.context.services.branching.switch_branch(
            await info.context.owner_id(), message_id
        )
        return ConversationType.from_record(conversation)
