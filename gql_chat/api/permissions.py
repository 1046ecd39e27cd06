"""Permission classes: fields that need a signed-in user or an admin."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from gql_chat.api.context import Info
from gql_chat.domain.users import Role
from gql_chat.errors import Forbidden


class IsAuthenticated(BasePermission):
    message = "Authentication required."
    error_extensions = {"code": "UNAUTHENTICATED"}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return await info.context.principal() is not None


class IsAdmin(BasePermission):
    """Anonymous callers get UNAUTHENTICATED (raised while resolving the user), others FORBIDDEN."""

    message = "Only administrators can do this."
    error_extensions = {"code": Forbidden.code}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        user = await info.context.require_user()
        return bool(user.role is Role.ADMIN)
