"""A user's own writes racing the deletion (or disabling) of their account.

Every request re-reads its user when it signs in, but one already past that when the deletion
starts may still insert after the deletion's passes, leaving data nobody owns. So a create checks
its owner once more after its insert (the deletion marks the user disabled before it deletes
anything), and takes the insert back when the owner is gone or disabled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bson import ObjectId

from gql_chat.errors import Unauthenticated
from gql_chat.services.accounts import SESSION_ENDED
from gql_chat.store.users import UserStore


async def keep_unless_owner_gone(
    users: UserStore, owner_id: ObjectId, undo: Callable[[], Awaitable[object]]
) -> None:
    """Raises `Unauthenticated` after `undo()` when the owner was deleted or disabled meanwhile."""
    user = await users.get(owner_id)
    if user is None or user.disabled:
        await undo()
        raise Unauthenticated(SESSION_ENDED)
