"""Administration: listing users and disabling accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bson import ObjectId

from gql_chat.errors import BadUserInput, Forbidden, NotFound
from gql_chat.services.validation import check_search
from gql_chat.store.database import Database
from gql_chat.store.ids import parse_object_id
from gql_chat.store.pagination import Page, page_size
from gql_chat.store.users import Role, UserRecord


def require_admin(user: UserRecord) -> None:
    if user.role is not Role.ADMIN:
        raise Forbidden("Only administrators can do this.")


class AdminService:
    def __init__(
        self, database: Database, on_user_disabled: Callable[[ObjectId], Awaitable[None]]
    ) -> None:
        self._db = database
        self._on_user_disabled = on_user_disabled

    async def list_users(
        self, admin: UserRecord, first: int | None, after: str | None, search: str | None
    ) -> Page[UserRecord]:
        require_admin(admin)
        return await self._db.users.list_page(page_size(first), after, check_search(search))

    async def set_disabled(self, admin: UserRecord, user_id: str, disabled: bool) -> UserRecord:
        """Disabling also ends every login of the user; their next request is refused."""
        require_admin(admin)
        oid = parse_object_id(user_id)
        if oid == admin.id:
            raise BadUserInput("userId", "Administrators cannot disable themselves.")
        target = await self._db.users.update(oid, disabled=disabled) if oid else None
        if target is None:
            raise NotFound("User not found.")
        if disabled:
            await self._db.refresh_tokens.revoke_all(target.id)
            await self._on_user_disabled(target.id)
        return target
