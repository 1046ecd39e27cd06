"""The audit log: who signed in or failed to, changed a password, lost a session, or changed
another account as an admin; who shared what. Each record is written before the action
returns (one insert: a sign-in's own work is far larger), with the request's id and client
address; a record that cannot be written is logged and never fails the action."""

from __future__ import annotations

import logging
from datetime import datetime

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.audit import AuditAction, AuditEntry, AuditOutcome
from gql_chat.domain.clock import utc_now
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.pages import Page
from gql_chat.domain.users import UserRecord
from gql_chat.errors import BadUserInput
from gql_chat.request_scope import client_ip_var, request_id_var
from gql_chat.services.pagination import page_size
from gql_chat.services.permissions import require_admin
from gql_chat.store.audit_log import AuditLogStore, AuditMatch
from gql_chat.store.cursors import decode_cursor, encode_cursor

logger = logging.getLogger(__name__)
MAX_DETAIL_CHARS = 200


class AuditLog:
    def __init__(self, settings: Settings, store: AuditLogStore) -> None:
        self._store = store
        self._retention = settings.audit_retention

    async def record(
        self,
        action: AuditAction,
        *,
        actor_id: ObjectId | None,
        subject_id: ObjectId | None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        **details: str,
    ) -> None:
        """`details`: ids, codes and settings only (never a secret or message text)."""
        request_id = request_id_var.get()
        entry = AuditEntry(
            id=ObjectId(),
            at=utc_now(),
            action=action,
            outcome=outcome,
            actor_id=actor_id,
            subject_id=subject_id,
            client_ip=client_ip_var.get(),
            request_id=None if request_id == "-" else request_id,
            details={name: value[:MAX_DETAIL_CHARS] for name, value in details.items()},
        )
        try:
            await self._store.append(entry, entry.at + self._retention)
        except Exception as error:
            logger.error(
                "an audit record could not be written: %s",
                type(error).__name__,
                extra={"action": action.value, "outcome": outcome.value},
            )

    async def sign_in_failed(
        self, subject_id: ObjectId | None, reason: str, **details: str
    ) -> None:
        """A refused sign-in: nobody acted (nobody was signed in); the account tried, if any."""
        await self.record(
            AuditAction.SIGN_IN,
            actor_id=None,
            subject_id=subject_id,
            outcome=AuditOutcome.FAILURE,
            reason=reason,
            **details,
        )

    async def page(
        self,
        admin: UserRecord,
        first: int | None,
        after: str | None,
        user_id: str | None,
        action: AuditAction | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Page[AuditEntry]:
        """Newest first, admins only. An id that names no record matches nothing."""
        require_admin(admin)
        if since is not None and until is not None and since >= until:
            raise BadUserInput("to", "`to` must be after `from`.")
        older_than = None
        if after is not None:
            older_than = parse_object_id(decode_cursor(after, "after").get("e"))
            if older_than is None:
                raise BadUserInput("after", "Invalid cursor.")
        user = None
        if user_id is not None:
            user = parse_object_id(user_id)
            if user is None:
                return Page(items=[], has_next_page=False, has_previous_page=False, total_count=0)
        match = AuditMatch(user_id=user, action=action, since=since, until=until)
        size = page_size(first)
        found = await self._store.newest_first(size + 1, older_than, match)
        return Page(
            items=[(encode_cursor({"e": str(entry.id)}), entry) for entry in found[:size]],
            has_next_page=len(found) > size,
            has_previous_page=after is not None,
            total_count=await self._store.count(match),
        )
