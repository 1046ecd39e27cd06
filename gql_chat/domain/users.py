"""Accounts as the rest of the app sees them: no storage details, the password as its hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bson import ObjectId

from gql_chat.domain.budgets import Budget
from gql_chat.domain.model_access import ModelPatterns


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: ObjectId
    email: str
    display_name: str
    role: Role
    disabled: bool
    password_hash: str | None
    """None for an account that signs in through providers only."""
    created_at: datetime
    email_verified: bool = False
    tokens_valid_after: datetime | None = None
    """Access tokens issued before it are refused (a password reset ends every sign-in)."""
    budget: Budget | None = None
    """Set by an admin for this user; None: `GQL_CHAT_DEFAULT_BUDGET` applies."""
    allowed_models: ModelPatterns | None = None
    """Set by an admin for this user; None: the role's setting applies
    (`GQL_CHAT_MODELS_ALLOWED_USER` or `_ADMIN`)."""

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None
