"""What the server does by mail: verifying a user's address, and resetting a forgotten
password. Each link carries a one-use token (256 random bits; only its SHA-256 is stored) that
expires (`GQL_CHAT_EMAIL_VERIFICATION_TTL`, `GQL_CHAT_PASSWORD_RESET_TTL`).

A reset request answers the same, as fast, whether or not the address has an account: the
lookup and the mail happen after the answer. Mail never makes an operation fail
(`mail/mailer.py`); without a way to send it (production without SMTP) these features are off:
their operations are `FORBIDDEN`, saying why."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta
from urllib.parse import quote

from gql_chat.config import Settings
from gql_chat.domain.audit import AuditAction
from gql_chat.domain.clock import utc_now
from gql_chat.domain.logins import Device
from gql_chat.domain.users import UserRecord
from gql_chat.errors import BadUserInput, Conflict, Forbidden
from gql_chat.mail.mailer import Mailer
from gql_chat.mail.messages import (
    address_changed_mail,
    new_address_mail,
    password_reset_mail,
    verification_mail,
)
from gql_chat.services.accounts import AccountService, Session, SignIn
from gql_chat.services.audit import AuditLog
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.tasks import end_tasks
from gql_chat.services.tokens import token_digest
from gql_chat.services.validation import check_password, normalize_email
from gql_chat.store.database import Database
from gql_chat.store.email_tokens import TokenPurpose

logger = logging.getLogger(__name__)

MAIL_OFF = "Mail is off on this server (no GQL_CHAT_SMTP_URL): ask its administrator."
BAD_LINK = "The link is invalid, used or expired: ask for a new one."
REQUESTS_AT_ONCE = 100
"""Reset requests being looked up and mailed at once in the background; more are dropped (the
per-IP and per-email limits keep honest use far below)."""


class EmailAccountService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        accounts: AccountService,
        mailer: Mailer,
        rate_limits: RateLimits,
        audit: AuditLog,
    ) -> None:
        self._audit = audit
        self._settings = settings
        self._db = database
        self._accounts = accounts
        self._mailer = mailer
        self._limits = rate_limits
        self._requests: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._mailer.enabled

    async def send_verification(self, user: UserRecord, link_base: str) -> None:
        """A verification link to the user's address (after registering); nothing when mail
        is off or the address is verified."""
        if not self.enabled or user.email_verified:
            return
        ttl = self._settings.email_verification_ttl
        try:
            token = await self._token(TokenPurpose.VERIFY_EMAIL, user, ttl)
        except Exception:  # the account stands; `resendVerification` tries again
            logger.warning("could not store a verification link", exc_info=True)
            return
        link = _link(link_base, "verify-email", token)
        hours = int(ttl.total_seconds() // 3600)
        self._mailer.queue(verification_mail(user.email, user.display_name, link, hours))

    async def resend_verification(self, user: UserRecord, link_base: str) -> None:
        self._require_mail()
        await self._limits.hit(self._limits.verification_mail_per_user, "verify", str(user.id))
        await self.send_verification(user, link_base)

    async def verify(self, token: str, link_base: str) -> UserRecord:
        """The user whose address the link was sent to, now verified (when it is still their
        address); for a link confirming a new address, with that address now theirs, and a
        notice to the old one."""
        digest = token_digest(token)
        used = await self._db.email_tokens.use(digest, TokenPurpose.VERIFY_EMAIL)
        if used is None:
            return await self._confirm_new_address(digest, link_base)
        user = await self._db.users.get(used.user_id)
        if user is None or user.email != used.email:
            raise BadUserInput("token", BAD_LINK)
        updated = await self._db.users.update(user.id, email_verified=True)
        return updated or user

    async def change_email(
        self, sign_in: SignIn, new_email: str, password: str, link_base: str
    ) -> None:
        """Mails a confirmation link to `new_email`; the address changes once it is used (the
        old one stays until then)."""
        self._require_mail()
        user = sign_in.user
        normalized = normalize_email(new_email, "newEmail")
        await self._accounts.confirm(sign_in, password)
        if normalized == user.email:
            raise BadUserInput("newEmail", "This is already your address.")
        if await self._db.users.get_by_email(normalized) is not None:
            raise Conflict("An account with this email already exists.", field="newEmail")
        await self._limits.hit(self._limits.verification_mail_per_user, "verify", str(user.id))
        ttl = self._settings.email_verification_ttl
        token = secrets.token_urlsafe(32)
        await self._db.email_tokens.add(
            token_digest(token), TokenPurpose.CHANGE_EMAIL, user.id, normalized, utc_now() + ttl
        )
        link = _link(link_base, "verify-email", token)
        hours = int(ttl.total_seconds() // 3600)
        self._mailer.queue(new_address_mail(normalized, user.display_name, link, hours))

    async def _confirm_new_address(self, digest: str, link_base: str) -> UserRecord:
        used = await self._db.email_tokens.use(digest, TokenPurpose.CHANGE_EMAIL)
        user = await self._db.users.get(used.user_id) if used is not None else None
        if used is None or user is None:
            raise BadUserInput("token", BAD_LINK)
        updated = await self._db.users.update(user.id, email=used.email, email_verified=True)
        if updated is None:
            raise BadUserInput("token", BAD_LINK)
        # Links sent to the old address no longer apply.
        await self._db.email_tokens.delete_for_user(user.id, TokenPurpose.RESET_PASSWORD)
        await self._db.email_tokens.delete_for_user(user.id, TokenPurpose.VERIFY_EMAIL)
        self._mailer.queue(
            address_changed_mail(user.email, user.display_name, used.email, link_base)
        )
        await self._audit.record(AuditAction.EMAIL_CHANGED, actor_id=user.id, subject_id=user.id)
        return updated

    async def request_reset(self, email: str, client_ip: str, link_base: str) -> None:
        """Answers at once, the same for any address: the account is looked up, and its mail
        queued, afterwards."""
        self._require_mail()
        normalized = email.strip().lower()[:254]
        await self._limits.hit(self._limits.password_reset_per_ip, "reset-ip", client_ip)
        await self._limits.hit(self._limits.password_reset_per_email, "reset-email", normalized)
        if len(self._requests) >= REQUESTS_AT_ONCE:
            logger.warning("too many password reset requests at once; one was dropped")
            return
        task = asyncio.create_task(self._send_reset(normalized, link_base))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def reset(self, token: str, new_password: str, device: Device) -> Session:
        """The new password, every earlier sign-in ended (and every other reset link), and a
        fresh sign-in. A bad password does not use up the link."""
        check_password(new_password, field="newPassword")
        used = await self._db.email_tokens.use(token_digest(token), TokenPurpose.RESET_PASSWORD)
        user = await self._db.users.get(used.user_id) if used is not None else None
        if used is None or user is None or user.disabled or user.email != used.email:
            raise BadUserInput("token", BAD_LINK)
        updated = await self._accounts.reset_password(user, new_password)
        await self._db.email_tokens.delete_for_user(user.id, TokenPurpose.RESET_PASSWORD)
        return await self._accounts.start_session(updated, device)

    async def close(self) -> None:
        await end_tasks(self._requests, "mail requests")

    async def _send_reset(self, email: str, link_base: str) -> None:
        try:
            normalized = normalize_email(email)
            user = await self._db.users.get_by_email(normalized)
            if user is None or user.disabled:
                return
            ttl = self._settings.password_reset_ttl
            token = await self._token(TokenPurpose.RESET_PASSWORD, user, ttl)
            link = _link(link_base, "reset-password", token)
            minutes = int(ttl.total_seconds() // 60)
            self._mailer.queue(password_reset_mail(user.email, user.display_name, link, minutes))
            await self._audit.record(
                AuditAction.PASSWORD_RESET_REQUESTED, actor_id=None, subject_id=user.id
            )
        except BadUserInput:
            return  # not an address: nothing to send
        except Exception:
            logger.exception("a password reset request failed")

    async def _token(self, purpose: TokenPurpose, user: UserRecord, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        await self._db.email_tokens.add(
            token_digest(token), purpose, user.id, user.email, utc_now() + ttl
        )
        return token

    def _require_mail(self) -> None:
        if not self.enabled:
            raise Forbidden(MAIL_OFF)


def _link(base: str, page: str, token: str) -> str:
    """`<frontend>/<page>?token=…`: the frontend's page reads the token and calls the API."""
    return f"{base.rstrip('/')}/{page}?token={quote(token)}"
