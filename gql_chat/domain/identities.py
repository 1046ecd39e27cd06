"""Identities: a user's accounts at OpenID Connect providers, each a way to sign in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """Who a provider says signed in: from its validated ID token."""

    issuer: str
    subject: str
    """The provider's id for the account (`sub`): unique and stable within its issuer."""
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """A provider account linked to a user: signing in there signs in as the user."""

    id: ObjectId
    user_id: ObjectId
    provider: str
    """The configured provider's name (`GQL_CHAT_OIDC_PROVIDERS`)."""
    issuer: str
    subject: str
    email: str | None
    """The address the provider gave at its latest sign-in (shown to the user)."""
    proven: bool
    """Linked by its signed-in user, or on an address its provider vouched for. A password
    reset (which proves the mailbox) removes the others: they may be someone else's."""
    created_at: datetime
    last_used_at: datetime
