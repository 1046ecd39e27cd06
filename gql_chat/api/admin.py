"""Administration: `users` and `setUserDisabled` (admins only)."""

from __future__ import annotations

import strawberry

from gql_chat.api.accounts import UserType
from gql_chat.api.context import Info
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAdmin


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


@strawberry.type
class AdminMutation:
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
