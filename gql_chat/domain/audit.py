"""The audit log: an append-only record of security-relevant and administrative actions (who did
what to whom, from where, and how it ended). It never holds secrets or message text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bson import ObjectId


class AuditAction(StrEnum):
    ACCOUNT_CREATED = "ACCOUNT_CREATED"
    SIGN_IN = "SIGN_IN"
    SIGN_OUT = "SIGN_OUT"
    SESSION_REVOKED = "SESSION_REVOKED"
    TOKEN_REUSE_DETECTED = "TOKEN_REUSE_DETECTED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"
    PASSWORD_RESET = "PASSWORD_RESET"
    EMAIL_CHANGED = "EMAIL_CHANGED"
    IDENTITY_LINKED = "IDENTITY_LINKED"
    IDENTITY_UNLINKED = "IDENTITY_UNLINKED"
    ACCOUNT_DELETED = "ACCOUNT_DELETED"
    ROLE_CHANGED = "ROLE_CHANGED"
    USER_DISABLED = "USER_DISABLED"
    USER_ENABLED = "USER_ENABLED"
    BUDGET_CHANGED = "BUDGET_CHANGED"
    MODEL_ACCESS_CHANGED = "MODEL_ACCESS_CHANGED"
    SHARE_CREATED = "SHARE_CREATED"
    SHARE_REVOKED = "SHARE_REVOKED"


class AuditOutcome(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: ObjectId
    at: datetime
    action: AuditAction
    outcome: AuditOutcome
    actor_id: ObjectId | None
    """Who acted: None for someone not signed in (a failed sign-in) or the command line."""
    subject_id: ObjectId | None
    """The account acted on (the actor's own for a sign-in or a password change)."""
    client_ip: str | None
    request_id: str | None
    details: dict[str, str] = field(default_factory=dict)
    """A few names and values that say more (`method: password`, `reason: ...`, `role: ADMIN`):
    ids, codes and settings, never a secret or message text."""
