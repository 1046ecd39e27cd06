"""Administration: listing users, disabling accounts, their budgets and model access."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from bson import ObjectId

from gql_chat.domain.audit import AuditAction, AuditOutcome
from gql_chat.domain.budgets import Budget, BudgetPeriod, check_amount
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.messages import FeedbackRating, MessageRecord
from gql_chat.domain.model_access import check_patterns
from gql_chat.domain.pages import Page
from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import BadUserInput, NotFound
from gql_chat.services.audit import AuditLog
from gql_chat.services.pagination import page_size
from gql_chat.services.permissions import require_admin
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.validation import check_search
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.database import Database


class AdminService:
    def __init__(
        self,
        database: Database,
        sign_ins: SignInChanges,
        audit: AuditLog,
        on_user_disabled: Callable[[ObjectId], AbstractAsyncContextManager[None]],
    ) -> None:
        """`on_user_disabled(user_id)` is entered around disabling: no reply of the user starts
        or writes meanwhile, and the running ones are stopped (the runner's `removing_owner`)."""
        self._db = database
        self._audit = audit
        self._sign_ins = sign_ins
        self._on_user_disabled = on_user_disabled

    async def list_users(
        self, admin: UserRecord, first: int | None, after: str | None, search: str | None
    ) -> Page[UserRecord]:
        require_admin(admin)
        return await self._db.users.list_page(page_size(first), after, check_search(search))

    async def feedback(
        self,
        admin: UserRecord,
        first: int | None,
        after: str | None,
        rating: FeedbackRating | None,
    ) -> Page[MessageRecord]:
        """Every user's rated replies, newest first: what the admins export to judge models."""
        require_admin(admin)
        size = page_size(first)
        older_than = None
        if after is not None:
            older_than = parse_object_id(decode_cursor(after, "after").get("m"))
            if older_than is None:
                raise BadUserInput("after", "Invalid cursor.")
        found = await self._db.messages.feedback_page(size + 1, older_than, rating)
        return Page(
            items=[(encode_cursor({"m": str(m.id)}), m) for m in found[:size]],
            has_next_page=len(found) > size,
            has_previous_page=after is not None,
            total_count=await self._db.messages.count_feedback(rating),
        )

    async def set_disabled(self, admin: UserRecord, user_id: str, disabled: bool) -> UserRecord:
        """Disabling also ends every login of the user; their next request is refused."""
        require_admin(admin)
        oid = parse_object_id(user_id)
        if oid == admin.id:
            raise BadUserInput("userId", "Administrators cannot disable themselves.")
        if oid is None:
            raise NotFound("User not found.")
        if not disabled:
            target = await self._db.users.update(oid, disabled=False)
        else:
            async with self._on_user_disabled(oid):
                target = await self._db.users.update(oid, disabled=True)
                if target is not None:
                    await self._db.refresh_tokens.revoke_all(target.id)
                    self._sign_ins.ended(target.id)
        action = AuditAction.USER_DISABLED if disabled else AuditAction.USER_ENABLED
        return await self._changed(admin, target, action)

    async def set_role(self, admin: UserRecord, user_id: str, role: Role) -> UserRecord:
        """Promote or demote; never oneself (the last admin cannot lock everyone out)."""
        require_admin(admin)
        oid = parse_object_id(user_id)
        if oid == admin.id:
            raise BadUserInput("userId", "Administrators cannot change their own role.")
        target = await self._db.users.update(oid, role=role.value) if oid is not None else None
        return await self._changed(admin, target, AuditAction.ROLE_CHANGED, role=role.value)

    async def set_model_access(
        self, admin: UserRecord, user_id: str, patterns: list[str] | None
    ) -> UserRecord:
        """The models the user may use (patterns as in `GQL_CHAT_MODELS_ALLOWED_USER`);
        None: back to their role's setting."""
        require_admin(admin)
        try:
            allowed = check_patterns(patterns) if patterns is not None else None
        except ValueError as exc:
            raise BadUserInput("models", f"The models: {exc}.") from None
        oid = parse_object_id(user_id)
        target = await self._db.users.set_allowed_models(oid, allowed) if oid is not None else None
        models = ", ".join(allowed.patterns) if allowed is not None else "(role setting)"
        return await self._changed(admin, target, AuditAction.MODEL_ACCESS_CHANGED, models=models)

    async def set_budget(
        self, admin: UserRecord, user_id: str, amount: float | None, period: BudgetPeriod
    ) -> UserRecord:
        """The user's own budget; `amount` None: back to `GQL_CHAT_DEFAULT_BUDGET`."""
        require_admin(admin)
        try:
            budget = Budget(check_amount(amount), period) if amount is not None else None
        except ValueError as exc:
            raise BadUserInput("amount", f"The amount {exc}.") from None
        oid = parse_object_id(user_id)
        target = await self._db.users.set_budget(oid, budget) if oid is not None else None
        limit = f"{budget.amount}/{budget.period.value}" if budget else "(default)"
        return await self._changed(admin, target, AuditAction.BUDGET_CHANGED, budget=limit)

    async def _changed(
        self, admin: UserRecord, target: UserRecord | None, action: AuditAction, **details: str
    ) -> UserRecord:
        """The user an admin just changed, audited; NOT_FOUND when there was none."""
        if target is None:
            raise NotFound("User not found.")
        await self._audit.record(
            action,
            actor_id=admin.id,
            subject_id=target.id,
            outcome=AuditOutcome.SUCCESS,
            **details,
        )
        return target
