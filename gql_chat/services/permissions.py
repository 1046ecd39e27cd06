"""Who may do what beyond their own data: the rules every admin operation checks first (the
API's `IsAdmin` says the same earlier, but the service is where the rule lives)."""

from __future__ import annotations

from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import Forbidden


def require_admin(user: UserRecord) -> None:
    if user.role is not Role.ADMIN:
        raise Forbidden("Only administrators can do this.")
