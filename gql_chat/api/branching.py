"""Branches: `regenerateMessage`, `editMessage`, `switchBranch`; and `continueGeneration`,
which grows a reply in place."""

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
            await info.context.require_user(), message_id, model
        )
        return SendMessagePayload.of(result)

    @strawberry.mutation(
        description=(
            'Continues a reply that was cut off by its length limit (finishReason "length"), '
            "STOPPED or INTERRUPTED, in place: the same message grows, and its stream goes on "
            "from its last seq (follow it with messageStream after that seq). The model gets "
            "the reply so far as the start of its answer; usage and time add up."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def continue_generation(
        self, info: Info, message_id: strawberry.ID
    ) -> SendMessagePayload:
        result = await info.context.services.continuation.continue_reply(
            await info.context.require_user(), message_id
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
            await info.context.require_user(), message_id, content, attachment_ids
        )
        return SendMessagePayload.of(result)

    @strawberry.mutation(
        description=(
            "A new conversation holding the path up to this message (copies, files included), "
            "in the same folder and with the same preset; the original is unchanged."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def fork_conversation(self, info: Info, message_id: strawberry.ID) -> ConversationType:
        conversation = await info.context.services.forks.fork(
            await info.context.owner_id(), message_id
        )
        return ConversationType.from_record(conversation)

    @strawberry.mutation(
        description=(
            "Deletes the message and everything below it (refused while a reply there is being "
            "written); the active branch moves to the nearest one left. Deleted replies' usage "
            "stays in the usage rollups. Returns the conversation as it is now."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def delete_message(self, info: Info, message_id: strawberry.ID) -> ConversationType:
        conversation = await info.context.services.branching.delete_message(
            await info.context.owner_id(), message_id
        )
        return ConversationType.from_record(conversation)

    @strawberry.mutation(
        description="Makes the branch through this message the active one.",
        permission_classes=[IsAuthenticated],
    )
    async def switch_branch(self, info: Info, message_id: strawberry.ID) -> ConversationType:
        conversation = await info.context.services.branching.switch_branch(
            await info.context.owner_id(), message_id
        )
        return ConversationType.from_record(conversation)
