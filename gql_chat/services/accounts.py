"""Accounts and sessions: registration, sign-in, refresh-token rotation with reuse detection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bson import ObjectId

from gql_chat.domain.audit import AuditAction, AuditOutcome
from gql_chat.domain.changes import UNSET, Maybe
from gql_chat.domain.clock import utc_now
from gql_chat.domain.logins import Device, LoginRecord
from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import BadUserInput, Forbidden, NotFound, Unauthenticated
from gql_chat.services.audit import AuditLog
from gql_chat.services.completion import Completions
from gql_chat.services.passwords import PasswordService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.tokens import IssuedToken, TokenService, TokenType, token_digest
from gql_chat.services.validation import (
    check_all,
    check_display_name,
    check_password,
    normalize_email,
)
from gql_chat.store.database import Database
from gql_chat.store.email_tokens import TokenPurpose
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

if TYPE_CHECKING:  # llm_configs imports owners, which imports this module
    from gql_chat.services.llm_configs import LlmConfigService

logger = logging.getLogger(__name__)

UserHook = Callable[[ObjectId], AbstractAsyncContextManager[None]]
"""Around removing a user: no reply of theirs starts or writes meanwhile, and the running ones
are stopped first (the runner's `removing_owner`)."""
WRITES_TIMEOUT = 30.0
"""The longest the writes of one account change may take once started."""
SWEEPS_AFTER_DELETE = (1.0, 15.0)
"""Seconds after deleting an account when its data is deleted again: a request of the user's
authenticated just before (which may still write) has ended by the first; one waiting for the
user's folder-tree lock (at most 10 s) by the second."""
LOGIN_FAILED = "Invalid email or password."
SESSION_ENDED = "The session has ended; sign in again."
RECENT_SIGN_IN = timedelta(minutes=10)
"""How recent a sign-in confirms an account without a password (as a password would)."""
SIGN_IN_AGAIN = (
    "Your account has no password: sign in again to confirm (within 10 minutes of signing in)."
)
NO_PASSWORD = (
    "Your account has no password: set one with a password reset link (requestPasswordReset)."
)
TOKEN_EXPIRED = "Invalid or expired token."


@dataclass(frozen=True, slots=True)
class SignIn:
    """Who an access token speaks for: the user (as read when checked), the sign-in (refresh-token
    family) it was issued to, and when it expires."""

    user: UserRecord
    family_id: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """What a successful sign-in or refresh hands back."""

    user: UserRecord
    access: IssuedToken
    refresh: IssuedToken
    family_id: str


class AccountService:
    def __init__(
        self,
        database: Database,
        passwords: PasswordService,
        tokens: TokenService,
        rate_limits: RateLimits,
        sign_ins: SignInChanges,
        audit: AuditLog,
        on_user_removed: UserHook | None = None,
        presets: LlmConfigService | None = None,
        events: UserEventBus | None = None,
    ) -> None:
        self._presets = presets
        self._events = events
        self._audit = audit
        self._db = database
        self._sign_ins = sign_ins
        self._limits = rate_limits
        self._on_user_removed = on_user_removed
        self._users = database.users
        self._refresh_tokens = database.refresh_tokens
        self._passwords = passwords
        self._tokens = tokens
        self._writes = Completions(WRITES_TIMEOUT)
        self._sweeps: set[asyncio.Task[None]] = set()

    async def register(
        self,
        email: str,
        password: str,
        display_name: str | None,
        client_ip: str,
        user_agent: str | None = None,
    ) -> Session:
        await self._limits.hit(self._limits.register_per_ip, "register", client_ip)
        check_all(
            lambda: normalize_email(email),
            lambda: check_password(password),
            lambda: display_name is None or check_display_name(display_name),
        )
        normalized = normalize_email(email)
        name = check_display_name(
            display_name if display_name is not None else normalized.split("@", 1)[0]
        )
        password_hash = await self._passwords.hash(password)
        user = await self._users.create(
            email=normalized, display_name=name, password_hash=password_hash
        )
        logger.info("user registered", extra={"user_id": str(user.id)})
        await self._audit.record(
            AuditAction.ACCOUNT_CREATED, actor_id=user.id, subject_id=user.id, method="password"
        )
        return await self.start_session(user, Device.of(client_ip, user_agent))

    async def login(
        self, email: str, password: str, client_ip: str, user_agent: str | None = None
    ) -> Session:
        """Unknown email, wrong password and disabled account fail alike, at the same cost.

        Limits: attempts per client IP, attempts per email, and failures per account per day
        (a lockout). A device (email + IP) that signed in successfully before is exempt from the
        per-email limits, so an attacker cannot lock a user out of their own devices."""
        try:
            normalized = normalize_email(email)
        except BadUserInput:
            normalized = email.strip().lower()[:254]
        await self._limits.hit(self._limits.login_per_ip, "login-ip", client_ip)
        device = f"{normalized}/{client_ip}"
        if not await self._limits.remembers(device):
            await self._limits.hit(self._limits.login_per_email, "login-email", normalized)
            await self._limits.check(self._limits.failed_logins, "login-failed", normalized)
        user = await self._users.get_by_email(normalized)
        if user is None:
            await self._passwords.burn_equivalent_work(password)
            await self._limits.count_failure(self._limits.failed_logins, "login-failed", normalized)
            await self._audit.sign_in_failed(None, "unknown_account", method="password")
            raise Unauthenticated(LOGIN_FAILED)
        if not await self._passwords.verify(user.password_hash, password) or user.disabled:
            await self._limits.count_failure(self._limits.failed_logins, "login-failed", normalized)
            reason = "account_disabled" if user.disabled else "wrong_password"
            await self._audit.sign_in_failed(user.id, reason, method="password")
            raise Unauthenticated(LOGIN_FAILED)
        await self._limits.remember(device)
        if user.password_hash is not None and self._passwords.needs_rehash(user.password_hash):
            await self._users.update(user.id, password_hash=await self._passwords.hash(password))
            user = await self._active_user(user.id)
        session = await self.start_session(user, Device.of(client_ip, user_agent))
        await self._unless_secured_meanwhile(user, session.family_id, LOGIN_FAILED)
        await self._audit.record(
            AuditAction.SIGN_IN,
            actor_id=user.id,
            subject_id=user.id,
            method="password",
            session=session.family_id,
        )
        return session

    async def refresh(self, refresh_token: str) -> Session:
        """Rotate: the presented token is retired; presenting a retired one revokes its family."""
        claims = self._tokens.decode(refresh_token, TokenType.REFRESH)
        await self._limits.hit(self._limits.refresh_per_user, "refresh", str(claims.user_id))
        record = await self._refresh_tokens.get(claims.jti)
        digest = token_digest(refresh_token)
        if record is None or record.token_hash != digest or record.user_id != claims.user_id:
            raise Unauthenticated(SESSION_ENDED)
        if not await self._refresh_tokens.mark_used(claims.jti, digest):
            await self._revoke_family(record.user_id, record.family_id)
            if record.revoked_at is None:
                logger.warning(
                    "refresh token reuse detected; session family revoked",
                    extra={"user_id": str(record.user_id)},
                )
                await self._audit.record(
                    AuditAction.TOKEN_REUSE_DETECTED,
                    actor_id=None,
                    subject_id=record.user_id,
                    outcome=AuditOutcome.FAILURE,
                    session=record.family_id,
                )
            raise Unauthenticated(SESSION_ENDED)
        user = await self._active_user(record.user_id)
        session = await self._issue_session(user, record.family_id)
        await self._unless_secured_meanwhile(user, record.family_id, SESSION_ENDED)
        await self._db.logins.used(record.family_id, session.refresh.expires_at)
        return session

    async def _unless_secured_meanwhile(
        self, user: UserRecord, family_id: str, message: str
    ) -> None:
        """A sign-in issued while the account was being secured (a password reset or change,
        a takeover, disabling) may have slipped past its revocations: it is revoked, and
        refused, unless the user is as it was read before issuing."""
        current = await self._users.get(user.id)
        if (
            current is None
            or current.disabled
            or current.password_hash != user.password_hash
            or current.tokens_valid_after != user.tokens_valid_after
        ):
            await self._revoke_family(user.id, family_id)
            raise Unauthenticated(message)

    async def logout(self, refresh_token: str) -> None:
        """Ends the sign-in this refresh token belongs to; idempotent for an already ended one.
        Counted with the refreshes: each call that ends something makes every open socket of
        the user (on every instance) check its sign-in again."""
        claims = self._tokens.decode(refresh_token, TokenType.REFRESH)
        await self._limits.hit(self._limits.refresh_per_user, "logout", str(claims.user_id))
        record = await self._refresh_tokens.get(claims.jti)
        if record is not None and record.token_hash == token_digest(refresh_token):
            await self._revoke_family(record.user_id, record.family_id)
            await self._audit.record(
                AuditAction.SIGN_OUT,
                actor_id=record.user_id,
                subject_id=record.user_id,
                session=record.family_id,
            )

    async def logout_all(self, user: UserRecord) -> None:
        if await self._refresh_tokens.revoke_all(user.id):
            self._sign_ins.ended(user.id)
        await self._audit.record(
            AuditAction.SESSION_REVOKED, actor_id=user.id, subject_id=user.id, session="all"
        )

    async def logins(self, user: UserRecord) -> list[LoginRecord]:
        """Where the user is signed in (sign-ins that can still refresh), the latest first."""
        live = await self._refresh_tokens.live_families(user.id)
        return await self._db.logins.of_user(user.id, live) if live else []

    async def revoke_login(self, user: UserRecord, login_id: str) -> None:
        """End one of the user's sign-ins (their own current one too); NOT_FOUND when it is
        not theirs or has ended."""
        if login_id not in await self._refresh_tokens.live_families(user.id):
            raise NotFound("Session not found.")
        await self._revoke_family(user.id, login_id)
        await self._db.logins.delete(user.id, login_id)
        await self._audit.record(
            AuditAction.SESSION_REVOKED, actor_id=user.id, subject_id=user.id, session=login_id
        )

    async def _revoke_family(self, user_id: ObjectId, family_id: str) -> None:
        """Only news when something ended: a sign-in ended before has no sockets left."""
        if await self._refresh_tokens.revoke_family(user_id, family_id):
            self._sign_ins.ended(user_id)

    async def authenticate(self, access_token: str) -> SignIn:
        """The sign-in behind an access token, its user re-checked against the user record."""
        claims = self._tokens.decode(access_token, TokenType.ACCESS)
        user = await self._active_user(claims.user_id)
        ended = user.tokens_valid_after
        if ended is not None and claims.issued_at is not None and claims.issued_at < ended:
            raise Unauthenticated(SESSION_ENDED)  # issued before a password reset
        return SignIn(user=user, family_id=claims.family_id, expires_at=claims.expires_at)

    async def recheck(self, sign_in: SignIn) -> SignIn:
        """A long-lived connection's sign-in, checked again (raises `Unauthenticated`): its token
        has not expired, its user is neither disabled nor deleted (and is read afresh), and its
        sign-in has not been revoked since (logout, logoutAll, a password change)."""
        if utc_now() >= sign_in.expires_at:
            raise Unauthenticated(TOKEN_EXPIRED)
        user = await self._active_user(sign_in.user.id)
        if sign_in.family_id is not None and not await self._refresh_tokens.family_live(
            user.id, sign_in.family_id
        ):
            raise Unauthenticated(SESSION_ENDED)
        return replace(sign_in, user=user)

    async def update_profile(
        self,
        user: UserRecord,
        display_name: str | None,
        default_preset: Maybe[str | None] = UNSET,
    ) -> UserRecord:
        """Everything is checked before anything is written; every device hears of it
        (`PROFILE_UPDATED`)."""
        fields = {}
        if display_name is not None:
            fields["display_name"] = check_display_name(display_name)
        if self._presets is not None and default_preset not in (UNSET, None):
            await self._presets.get(user.id, default_preset)  # NOT_FOUND first
        updated = await self._users.update(user.id, **fields)
        if updated is None:
            raise Unauthenticated(SESSION_ENDED)
        if self._presets is not None and default_preset is not UNSET:
            await self._presets.set_default(user.id, default_preset)
        if self._events is not None:
            self._events.publish(user.id, UserEvent(UserEventKind.PROFILE_UPDATED))
        return updated

    async def change_password(
        self, user: UserRecord, current_password: str, new_password: str, keep_family: str | None
    ) -> None:
        """Revokes every other sign-in; `keep_family` is the caller's own, when it is known."""
        if not user.has_password:
            raise BadUserInput("currentPassword", NO_PASSWORD)
        if not await self._passwords.verify(user.password_hash, current_password):
            await self._audit.record(
                AuditAction.PASSWORD_CHANGED,
                actor_id=user.id,
                subject_id=user.id,
                outcome=AuditOutcome.FAILURE,
                reason="wrong_password",
            )
            raise BadUserInput("currentPassword", "The current password is wrong.")
        check_password(new_password, field="newPassword")
        password_hash = await self._passwords.hash(new_password)
        # Both writes or neither: a new password with the old sessions still alive is the
        # state an attacker holding a session wants.
        if await self._writes.run(self._set_password(user.id, password_hash, keep_family)):
            self._sign_ins.ended(user.id)
        await self._audit.record(AuditAction.PASSWORD_CHANGED, actor_id=user.id, subject_id=user.id)

    async def _set_password(
        self, user_id: ObjectId, password_hash: str, keep_family: str | None
    ) -> int:
        """How many sign-ins' tokens were revoked."""
        await self._users.update(user_id, password_hash=password_hash)
        return await self._refresh_tokens.revoke_all(user_id, except_family=keep_family)

    async def delete_account(self, sign_in: SignIn, password: str) -> None:
        await self.confirm(sign_in, password)
        user = sign_in.user
        await self._writes.run(self._delete(user.id))
        self._sign_ins.ended(user.id)
        logger.info("account deleted", extra={"user_id": str(user.id)})
        await self._audit.record(AuditAction.ACCOUNT_DELETED, actor_id=user.id, subject_id=user.id)

    async def _delete(self, user_id: ObjectId) -> None:
        """The user is refused first (every request and websocket operation re-reads them), and
        replies stopped; no new one starts meanwhile. The deletes run again once the sends in
        flight have ended, and twice more later (`SWEEPS_AFTER_DELETE`) for other requests of
        the user's that were already past their sign-in: nothing they wrote is left."""
        await self._users.update(user_id, disabled=True)
        removing = (
            self._on_user_removed(user_id)
            if self._on_user_removed is not None
            else contextlib.nullcontext()
        )
        async with removing:
            await self._db.delete_user_and_owned_data(user_id)
        await self._db.delete_user_and_owned_data(user_id)
        sweep = asyncio.create_task(self._sweep_deleted(user_id))
        self._sweeps.add(sweep)
        sweep.add_done_callback(self._sweeps.discard)

    async def _sweep_deleted(self, user_id: ObjectId) -> None:
        waited = 0.0
        for after in SWEEPS_AFTER_DELETE:
            await asyncio.sleep(after - waited)
            waited = after
            try:
                async with asyncio.timeout(WRITES_TIMEOUT):
                    await self._db.delete_user_and_owned_data(user_id)
            except Exception as error:
                logger.warning(
                    "a deleted account's late sweep failed: %s",
                    type(error).__name__,
                    extra={"user_id": str(user_id)},
                )

    async def create_admin(self, email: str, password: str) -> tuple[UserRecord, bool]:
        """Create an admin, or promote an existing account (its password is left as it was)."""
        normalized = normalize_email(email)
        existing = await self._users.get_by_email(normalized)
        if existing is not None:
            promoted = await self._users.update(existing.id, role=Role.ADMIN.value)
            assert promoted is not None
            await self._audit.record(
                AuditAction.ROLE_CHANGED,
                actor_id=None,
                subject_id=promoted.id,
                role=Role.ADMIN.value,
                via="command_line",
            )
            return promoted, False
        check_password(password)
        user = await self._users.create(
            email=normalized,
            display_name=check_display_name(normalized.split("@", 1)[0]),
            password_hash=await self._passwords.hash(password),
            role=Role.ADMIN,
        )
        await self._audit.record(
            AuditAction.ACCOUNT_CREATED,
            actor_id=None,
            subject_id=user.id,
            role=Role.ADMIN.value,
            via="command_line",
        )
        return user, True

    async def is_active(self, user_id: ObjectId) -> bool:
        """Neither deleted nor disabled."""
        user = await self._users.get(user_id)
        return user is not None and not user.disabled

    async def _active_user(self, user_id: ObjectId) -> UserRecord:
        user = await self._users.get(user_id)
        if user is None or user.disabled:
            raise Unauthenticated(SESSION_ENDED)
        return user

    async def confirm(self, sign_in: SignIn, password: str) -> None:
        """That the signed-in user is at the keyboard, before a change that needs it: their
        password (`BadUserInput` on `password` when wrong); for an account without one, a
        sign-in (through a provider) at most `RECENT_SIGN_IN` old (`Forbidden` otherwise)."""
        user = sign_in.user
        if user.has_password:
            if not await self._passwords.verify(user.password_hash, password):
                raise BadUserInput("password", "The password is wrong.")
            return
        signed_in_at = (
            await self._db.logins.signed_in_at(user.id, sign_in.family_id)
            if sign_in.family_id is not None
            else None
        )
        if signed_in_at is None or utc_now() - signed_in_at > RECENT_SIGN_IN:
            raise Forbidden(SIGN_IN_AGAIN, reason="SIGN_IN_AGAIN")

    async def create_external_user(
        self, email: str, display_name: str | None, email_verified: bool
    ) -> UserRecord:
        """An account for someone who signed in through a provider: no password. `Conflict`
        when the address has an account."""
        name = _first_display_name(display_name, email.split("@", 1)[0])
        user = await self._users.create(
            email=email, display_name=name, password_hash=None, email_verified=email_verified
        )
        logger.info("user registered through a provider", extra={"user_id": str(user.id)})
        return user

    async def take_over_unverified(self, user: UserRecord) -> UserRecord:
        """A provider proved the address of an account that never did: whoever set its
        password or linked its identities may not own the address (an account pre-made by an
        attacker, waiting for its owner), so the password, every sign-in and every identity
        end. The owner signs in through the provider, or resets the password."""
        updated = await self._writes.run(self._secure(user.id, None, every_identity=True))
        self._sign_ins.ended(user.id)
        logger.warning(
            "a provider proved an unverified account's address: its password and sign-ins ended",
            extra={"user_id": str(user.id)},
        )
        return updated or user

    async def end_unproven_links(self, user: UserRecord) -> UserRecord:
        """A provider proved the address of an account with identities linked while it was
        unproven (before a verification link was followed): those, and every sign-in, end;
        the password stays."""
        updated = await self._writes.run(self._secure(user.id, user.password_hash))
        self._sign_ins.ended(user.id)
        return updated or user

    async def reset_password(self, user: UserRecord, new_password: str) -> UserRecord:
        """The new password, and every sign-in ended: refresh tokens revoked, and access tokens
        issued until now refused (both writes or neither, as in `change_password`). The
        address is proven (the reset link reached it): see `_secure`. The user as now stored."""
        password_hash = await self._passwords.hash(new_password)
        updated = await self._writes.run(self._secure(user.id, password_hash))
        self._sign_ins.ended(user.id)
        await self._audit.record(AuditAction.PASSWORD_RESET, actor_id=user.id, subject_id=user.id)
        return updated or user

    async def _secure(
        self, user_id: ObjectId, password_hash: str | None, *, every_identity: bool = False
    ) -> UserRecord | None:
        """The address is proven: it is verified, the password is this one, every sign-in
        ends (with the provider sign-in codes and link tickets not yet used), and identities
        linked while the address was unproven are removed (they may be an attacker's): all
        of them with `every_identity`."""
        ended = utc_now()  # tokens carry milliseconds: the fresh one issued next stands
        updated = await self._users.update(
            user_id, password_hash=password_hash, tokens_valid_after=ended, email_verified=True
        )
        await self._refresh_tokens.revoke_all(user_id)
        await self._db.email_tokens.delete_for_user(
            user_id, TokenPurpose.SIGN_IN, TokenPurpose.LINK_IDENTITY, TokenPurpose.LINK_CODE
        )
        if every_identity:
            await self._db.identities.delete_for_user(user_id)
        else:
            await self._db.identities.delete_unproven(user_id)
        return updated

    async def start_session(self, user: UserRecord, device: Device) -> Session:
        """A new sign-in (a login, a registration, a password reset, a provider's)."""
        session = await self._issue_session(user, secrets.token_urlsafe(16))
        await self._db.logins.add(session.family_id, user.id, device, session.refresh.expires_at)
        return session

    async def _issue_session(self, user: UserRecord, family_id: str) -> Session:
        access = self._tokens.issue(user.id, TokenType.ACCESS, family_id=family_id)
        refresh = self._tokens.issue(user.id, TokenType.REFRESH, family_id=family_id)
        await self._refresh_tokens.insert(
            jti=refresh.jti,
            user_id=user.id,
            family_id=family_id,
            token_hash=token_digest(refresh.token),
            expires_at=refresh.expires_at,
        )
        return Session(user=user, access=access, refresh=refresh, family_id=family_id)


def _first_display_name(*candidates: str | None) -> str:
    """The first candidate that is a valid display name (a provider's `name` may not be)."""
    for candidate in candidates:
        try:
            return check_display_name(candidate or "")
        except BadUserInput:
            continue
    return "user"
