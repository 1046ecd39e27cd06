"""Administration (admins only): `users`, `feedback`, and what each user may do and spend."""

from __future__ import annotations

import strawberry

from gql_chat.api.accounts import Role, UserType
from gql_chat.api.budgets import BudgetPeriod
from gql_chat.api.context import Info
from gql_chat.api.messages import FeedbackRating, MessageFeedback, MessageType
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAdmin
from gql_chat.domain.budgets import BudgetPeriod as BudgetPeriodValue


@strawberry.type
class UserEdge:
    cursor: str
    node: UserType


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AdminQuery:
    @strawberry.field(
        description="Admins only (FORBIDDEN otherwise).", permission_classes=[IsAdmin]
    )
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
    ) -> UserConnection:
        page = await info.context.services.admin.list_users(
            await info.context.require_user(), first, after, search
        )
        return UserConnection(
            edges=[UserEdge(cursor=c, node=UserType.from_record(u)) for c, u in page.items],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type(description="A rated reply, for the admins' feedback export.")
class FeedbackEntry:
    message: MessageType
    user_id: strawberry.ID
    conversation_id: strawberry.ID
    model: str | None
    feedback: MessageFeedback


@strawberry.type
class FeedbackEdge:
    cursor: str
    node: FeedbackEntry


@strawberry.type
class FeedbackConnection:
    edges: list[FeedbackEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AdminFeedbackQuery:
    @strawberry.field(
        description=(
            "Admins only: every user's rated replies, newest first, optionally one rating; page "
            "through it to export the feedback."
        ),
        permission_classes=[IsAdmin],
    )
    async def feedback(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        rating: FeedbackRating | None = None,  # type: ignore[valid-type]
    ) -> FeedbackConnection:
        page = await info.context.services.admin.feedback(
            await info.context.require_user(), first, after, rating
        )
        edges = [
            FeedbackEdge(
                cursor=cursor,
                node=FeedbackEntry(
                    message=MessageType.from_record(message),
                    user_id=strawberry.ID(str(message.owner_id)),
                    conversation_id=strawberry.ID(str(message.conversation_id)),
                    model=message.model,
                    feedback=MessageFeedback.of(message.feedback),
                ),
            )
            for cursor, message in page.items
            if message.feedback is not None
        ]
        return FeedbackConnection(
            edges=edges, page_info=PageInfo.of(page), total_count=page.total_count
        )


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        description=(
            "Admins only. The user's own spending limit per period; `amount: null` goes back "
            "to the default (GQL_CHAT_DEFAULT_BUDGET)."
        ),
        permission_classes=[IsAdmin],
    )
    async def set_user_budget(
        self,
        info: Info,
        user_id: strawberry.ID,
        amount: float | None,
        period: BudgetPeriod = BudgetPeriodValue.MONTH,  # type: ignore[valid-type]
    ) -> UserType:
        user = await info.context.services.admin.set_budget(
            await info.context.require_user(), user_id, amount, period
        )
        return UserType.from_record(user)

    @strawberry.mutation(
        description=(
            "Admins only. Makes the user an admin or a user again (not oneself); it applies "
            "to their next request."
        ),
        permission_classes=[IsAdmin],
    )
    async def set_user_role(
        self,
        info: Info,
        user_id: strawberry.ID,
        role: Role,  # type: ignore[valid-type]
    ) -> UserType:
        user = await info.context.services.admin.set_role(
            await info.context.require_user(), user_id, role
        )
        return UserType.from_record(user)

    @strawberry.mutation(
        description=(
            "Admins only. The models the user may use: patterns where * stands for any "
            "characters (openai/*, *:free); [] allows none; null goes back to the role's "
            "setting (GQL_CHAT_MODELS_ALLOWED_USER or _ADMIN)."
        ),
        permission_classes=[IsAdmin],
    )
    async def set_user_model_access(
        self, info: Info, user_id: strawberry.ID, models: list[str] | None
    ) -> UserType:
        user = await info.context.services.admin.set_model_access(
            await info.context.require_user(), user_id, models
        )
        return UserType.from_record(user)

    @strawberry.mutation(
        description="Admins only. Disabling revokes the user's tokens and stops their replies.",
        permission_classes=[IsAdmin],
    )
    async def set_user_disabled(
        self, info: Info, user_id: strawberry.ID, disabled: bool
    ) -> UserType:
        user = await info.context.services.admin.set_disabled(
            await info.context.require_user(), user_id, disabled
        )
        return UserType.from_record(user)
