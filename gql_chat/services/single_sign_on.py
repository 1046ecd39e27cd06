"""Signing in through OpenID Connect providers, and the identities it links to accounts.

The flow: `start` records the flow (state, nonce, PKCE verifier, a hash of a random value the
browser keeps in a cookie, and the frontend's own challenge) and returns the provider's URL;
the provider sends the browser back to `finish`, which takes the flow once (only for the
browser that started it), has the code exchanged and the ID token validated
(`oidc/providers.py`), finds or makes the user, and returns a one-time code (`CODE_TTL`, one
use, hashed at rest) that only the frontend holding the challenge's verifier can exchange
(`exchange`) for the usual tokens: tokens never travel in a URL, and a code carried to
another browser is worthless (a login CSRF).

Linking: a provider account (issuer + subject) is one identity of one user. A new one makes a
user (no password; verified when the provider vouches for the address), or joins the account
that has its address, but only when the provider vouches for that address, and never an
administrator's. Joining an account whose address was never proven ends its password,
sign-ins and identities; joining one that has identities linked while its address was unproven
ends those and its sign-ins (`AccountService.take_over_unverified`, `end_unproven_links`):
whoever made them may have pre-registered the owner's address. A signed-in user links more
providers (`link_ticket`, then `complete_link` by that same user) and unlinks them, but never
the last way to sign in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId

from gql_chat.domain.audit import AuditAction
from gql_chat.domain.clock import utc_now
from gql_chat.domain.identities import IdentityRecord, ProviderAccount
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.logins import Device
from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import BadUserInput, Conflict, Forbidden, NotFound
from gql_chat.oidc.errors import SignInFailed, SignInFailure
from gql_chat.oidc.providers import Providers
from gql_chat.services.accounts import AccountService, Session, SignIn
from gql_chat.services.audit import AuditLog
from gql_chat.services.email_accounts import EmailAccountService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.tokens import token_digest
from gql_chat.services.validation import normalize_email
from gql_chat.store.database import Database
from gql_chat.store.email_tokens import TokenPurpose
from gql_chat.store.identities import IDENTITY_IN_USE
from gql_chat.store.sign_in_flows import SignInFlow

logger = logging.getLogger(__name__)

FLOW_TTL = timedelta(minutes=10)
"""From the redirect to the provider to its callback."""
CODE_TTL = timedelta(minutes=1)
"""From the callback to the frontend's `exchangeSignInCode`."""
LINK_TICKET_TTL = timedelta(minutes=5)
BAD_CODE = "The sign-in code is invalid, used or expired: sign in again."
LAST_WAY = (
    "This is your only way to sign in: set a password (requestPasswordReset) or link another "
    "provider first."
)
UNKNOWN_PROVIDER = "No such sign-in provider."
BAD_VERIFIER = "The code verifier does not match the sign-in's challenge: sign in again."
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
"""base64url(SHA-256(verifier)), unpadded, as PKCE's S256."""
USER_REFUSALS = frozenset(
    {"access_denied", "login_required", "consent_required", "interaction_required"}
)
"""Provider errors that mean the user did not sign in there (the rest are the provider's or
its configuration's)."""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """The one-time code a callback ends with: a sign-in's, or a link's (`linking`)."""

    code: str
    linking: bool


class SingleSignOn:
    def __init__(
        self,
        database: Database,
        accounts: AccountService,
        email_accounts: EmailAccountService,
        providers: Providers,
        rate_limits: RateLimits,
        audit: AuditLog,
    ) -> None:
        self._audit = audit
        self._db = database
        self._accounts = accounts
        self._email_accounts = email_accounts
        self._providers = providers
        self._limits = rate_limits

    def providers(self) -> list[ProviderInfo]:
        return [
            ProviderInfo(name, provider.display_name or name)
            for name, provider in self._providers.configured().items()
        ]

    async def start(
        self,
        provider: str,
        redirect_uri: str,
        browser_secret: str,
        client_ip: str,
        client_challenge: str | None,
        link_ticket: str | None = None,
    ) -> str:
        """The provider's authorization URL for this browser (`browser_secret` is what its
        cookie holds) and frontend (`client_challenge`). `link_ticket`: a signed-in user's,
        to link rather than sign in."""
        self._require(provider)
        if client_challenge is None or not CHALLENGE.fullmatch(client_challenge):
            raise SignInFailed(SignInFailure.INVALID_REQUEST, f"{provider}: no code_challenge")
        # Counted with password logins: each start writes a flow and may call the provider.
        await self._limits.hit(self._limits.login_per_ip, "sign-in-provider", client_ip)
        link_user_id = None
        if link_ticket is not None:
            used = await self._db.email_tokens.use(
                token_digest(link_ticket), TokenPurpose.LINK_IDENTITY
            )
            if used is None:
                raise SignInFailed(SignInFailure.INVALID_REQUEST, "an unknown link ticket")
            link_user_id = used.user_id
        authorization = await self._providers.authorization(provider, redirect_uri)
        await self._db.sign_in_flows.add(
            token_digest(authorization.state),
            SignInFlow(
                provider=provider,
                browser_hash=token_digest(browser_secret),
                nonce=authorization.nonce,
                code_verifier=authorization.code_verifier,
                redirect_uri=redirect_uri,
                client_challenge=client_challenge,
                link_user_id=link_user_id,
                expires_at=utc_now() + FLOW_TTL,
            ),
        )
        return authorization.url

    async def finish(
        self,
        provider: str,
        state: str | None,
        code: str | None,
        error: str | None,
        browser_secret: str | None,
        link_base: str,
    ) -> CallbackResult:
        """The provider's callback (its `state`, `code` or `error`). Raises `SignInFailed`
        (and audits it)."""
        self._require(provider)
        try:
            return await self._finish(provider, state, code, error, browser_secret, link_base)
        except SignInFailed as failed:
            await self._audit.sign_in_failed(
                None, failed.failure.value, method="provider", provider=provider
            )
            raise

    async def _finish(
        self,
        provider: str,
        state: str | None,
        code: str | None,
        error: str | None,
        browser_secret: str | None,
        link_base: str,
    ) -> CallbackResult:
        flow = (
            await self._db.sign_in_flows.take(token_digest(state), token_digest(browser_secret))
            if state and browser_secret
            else None
        )
        if flow is None or flow.provider != provider:
            raise SignInFailed(SignInFailure.INVALID_REQUEST, f"{provider}: no such flow here")
        if error is not None:  # RFC 6749, section 4.1.2.1
            failure = (
                SignInFailure.ACCESS_DENIED
                if error in USER_REFUSALS
                else SignInFailure.PROVIDER_UNAVAILABLE
            )
            raise SignInFailed(failure, f"{provider}: {error[:100]}")
        if not code:
            raise SignInFailed(SignInFailure.INVALID_REQUEST, f"{provider}: no code")
        account = await self._providers.account(
            provider, code, flow.redirect_uri, flow.code_verifier, flow.nonce
        )
        one_time = secrets.token_urlsafe(32)
        data: dict[str, Any] = {"challenge": flow.client_challenge, "provider": provider}
        if flow.link_user_id is not None:
            user = await self._active(flow.link_user_id)
            purpose = TokenPurpose.LINK_CODE
            data |= {"account": asdict(account)}
        else:
            user = await self._user_for(provider, account, link_base)
            purpose = TokenPurpose.SIGN_IN
        await self._db.email_tokens.add(
            token_digest(one_time), purpose, user.id, user.email, utc_now() + CODE_TTL, data
        )
        return CallbackResult(code=one_time, linking=flow.link_user_id is not None)

    async def exchange(self, code: str, code_verifier: str, device: Device) -> Session:
        """A new sign-in for a callback's one-time code (once), from the frontend that
        started it (`code_verifier`)."""
        user, data = await self._redeem(code, code_verifier, TokenPurpose.SIGN_IN)
        session = await self._accounts.start_session(user, device)
        await self._audit.record(
            AuditAction.SIGN_IN,
            actor_id=user.id,
            subject_id=user.id,
            method="provider",
            provider=str(data.get("provider", "")),
            session=session.family_id,
        )
        return session

    async def complete_link(self, sign_in: SignIn, code: str, code_verifier: str) -> IdentityRecord:
        """Links the provider account a link's callback ended with to the signed-in user, who
        must be the one who asked (`link_ticket`). The link is proven when the account's
        address is: linked on an unproven one, a password reset removes it."""
        user, data = await self._redeem(code, code_verifier, TokenPurpose.LINK_CODE)
        if user.id != sign_in.user.id:
            raise Forbidden("This link was started by another user.")
        account = ProviderAccount(**data["account"])
        identity = await self._db.identities.signed_in(account)
        if identity is None:
            try:
                identity = await self._db.identities.add(
                    user.id, data["provider"], account, proven=user.email_verified
                )
            except Conflict:
                identity = await self._db.identities.signed_in(account)
        if identity is None or identity.user_id != user.id:
            raise Conflict(IDENTITY_IN_USE)
        logger.info("identity linked", extra={"user_id": str(user.id)})
        await self._audit.record(
            AuditAction.IDENTITY_LINKED,
            actor_id=user.id,
            subject_id=user.id,
            provider=identity.provider,
            via="link",
        )
        return identity

    async def _redeem(
        self, code: str, code_verifier: str, purpose: TokenPurpose
    ) -> tuple[UserRecord, dict[str, Any]]:
        """The user of a one-time code, and what it carries; `BadUserInput` for an unknown,
        used or expired code, one issued before the user's sign-ins were ended, or a verifier
        that is not the frontend's."""
        used = await self._db.email_tokens.use(token_digest(code), purpose)
        user = await self._db.users.get(used.user_id) if used is not None else None
        if used is None or user is None or user.disabled:
            raise BadUserInput("code", BAD_CODE)
        if user.tokens_valid_after is not None and used.created_at < user.tokens_valid_after:
            raise BadUserInput("code", BAD_CODE)
        if not hmac.compare_digest(str(used.data.get("challenge")), challenge_of(code_verifier)):
            raise BadUserInput("codeVerifier", BAD_VERIFIER)
        return user, used.data

    async def link_ticket(self, sign_in: SignIn, provider: str, password: str) -> str:
        """A one-use ticket for the start URL, to link `provider` to the signed-in user (who
        confirms it is them: see `AccountService.confirm`)."""
        self._require(provider)
        await self._accounts.confirm(sign_in, password)
        ticket = secrets.token_urlsafe(32)
        await self._db.email_tokens.add(
            token_digest(ticket),
            TokenPurpose.LINK_IDENTITY,
            sign_in.user.id,
            sign_in.user.email,
            utc_now() + LINK_TICKET_TTL,
        )
        return ticket

    async def identities(self, user: UserRecord) -> list[IdentityRecord]:
        return await self._db.identities.of_user(user.id)

    async def unlink(self, user: UserRecord, identity_id: str) -> None:
        """Never the last way to sign in: for an account without a password, an unlink that
        leaves no identity (two at once, on any instances) is undone."""
        parsed = parse_object_id(identity_id)
        linked = await self._db.identities.of_user(user.id) if parsed is not None else []
        target = next((identity for identity in linked if identity.id == parsed), None)
        if target is None:
            raise NotFound("Identity not found.")
        if not user.has_password and len(linked) == 1:
            raise Conflict(LAST_WAY)
        if not await self._db.identities.delete(user.id, target.id):
            raise NotFound("Identity not found.")
        if not user.has_password and await self._db.identities.count(user.id) == 0:
            await self._db.identities.restore(target)
            raise Conflict(LAST_WAY)
        await self._audit.record(
            AuditAction.IDENTITY_UNLINKED,
            actor_id=user.id,
            subject_id=user.id,
            provider=target.provider,
        )

    async def _user_for(
        self, provider: str, account: ProviderAccount, link_base: str
    ) -> UserRecord:
        identity = await self._db.identities.signed_in(account)
        if identity is not None:
            return await self._active(identity.user_id)
        try:
            email = normalize_email(account.email or "")
        except BadUserInput:
            raise SignInFailed(SignInFailure.EMAIL_REQUIRED, f"{provider}: no address") from None
        for _ in range(2):  # a second look when the address was registered meanwhile
            existing = await self._db.users.get_by_email(email)
            if existing is not None:
                user = await self._join(provider, account, existing)
            else:
                try:
                    user = await self._accounts.create_external_user(
                        email, account.name, account.email_verified
                    )
                except Conflict:
                    continue
                await self._audit.record(
                    AuditAction.ACCOUNT_CREATED,
                    actor_id=user.id,
                    subject_id=user.id,
                    method="provider",
                    provider=provider,
                )
                await self._email_accounts.send_verification(user, link_base)
            try:
                await self._db.identities.add(
                    user.id, provider, account, proven=account.email_verified
                )
            except Conflict:  # the same provider account, signing in twice at once
                identity = await self._db.identities.signed_in(account)
                if identity is None:
                    raise SignInFailed(
                        SignInFailure.INVALID_REQUEST, "unlinked meanwhile"
                    ) from None
                return await self._active(identity.user_id)
            logger.info("identity linked", extra={"user_id": str(user.id), "provider": provider})
            await self._audit.record(
                AuditAction.IDENTITY_LINKED,
                actor_id=user.id,
                subject_id=user.id,
                provider=provider,
                via="sign_in",
            )
            return user
        raise SignInFailed(SignInFailure.INVALID_REQUEST, f"{provider}: address raced")

    async def _join(
        self, provider: str, account: ProviderAccount, existing: UserRecord
    ) -> UserRecord:
        """The account with the provider's address, when the provider vouches for it."""
        if not account.email_verified:
            raise SignInFailed(
                SignInFailure.EMAIL_NOT_VERIFIED, f"{provider}: unverified address of an account"
            )
        if existing.disabled:
            raise SignInFailed(SignInFailure.ACCOUNT_DISABLED, f"{provider}: disabled account")
        if existing.role is Role.ADMIN:
            raise SignInFailed(SignInFailure.LINK_REFUSED, f"{provider}: an administrator")
        if not existing.email_verified:
            return await self._accounts.take_over_unverified(existing)
        if any(not identity.proven for identity in await self._db.identities.of_user(existing.id)):
            return await self._accounts.end_unproven_links(existing)
        return existing

    async def _active(self, user_id: ObjectId) -> UserRecord:
        user = await self._db.users.get(user_id)
        if user is None or user.disabled:
            raise SignInFailed(SignInFailure.ACCOUNT_DISABLED, "disabled or deleted")
        return user

    def _require(self, provider: str) -> None:
        if provider not in self._providers:
            raise NotFound(UNKNOWN_PROVIDER)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
