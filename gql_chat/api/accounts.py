"""Accounts: `me`, registration, sign-in, token rotation, profile and password."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_chat.api.attachments import public_base_url
from gql_chat.api.budgets import Budget
from gql_chat.api.context import Info
from gql_chat.api.inputs import given
from gql_chat.api.llm_configs import LlmConfigType
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.logins import LoginRecord
from gql_chat.domain.users import Role as RoleValue
from gql_chat.domain.users import UserRecord
from gql_chat.services.accounts import Session

Role = strawberry.enum(RoleValue, name="Role")


@strawberry.type
class ModelAccess:
    patterns: list[str]
    custom: bool = strawberry.field(
        description="Set by an admin for this account; false: the role's setting applies."
    )


@strawberry.type(name="User")
class UserType:
    id: strawberry.ID
    email: str
    display_name: str
    role: Role  # type: ignore[valid-type]
    disabled: bool
    created_at: datetime
    email_verified: bool = strawberry.field(
        description=(
            "Whether the address was confirmed (verifyEmail, a password reset link, or a "
            "provider that vouched for it)."
        )
    )
    has_password: bool = strawberry.field(
        description=(
            "False for an account that signs in through providers only: offer a password "
            "reset, not a password change."
        )
    )

    record: strawberry.Private[UserRecord]

    @strawberry.field(
        description=(
            "The spending limit that applies (set by an admin, else the default) and what is "
            "spent of it; null when there is none. Over it, sends are QUOTA_EXCEEDED."
        )
    )
    async def budget(self, info: Info) -> Budget | None:
        status = await info.context.services.budgets.status(self.record)
        return Budget.of(status) if status else None

    @strawberry.field(
        description=(
            "The models this account may use: patterns where * stands for any characters. "
            "Sending, regenerating or saving a preset with another model is FORBIDDEN "
            "(extensions.field: model)."
        )
    )
    def model_access(self, info: Info) -> ModelAccess:
        patterns = info.context.services.model_access.patterns_for(self.record)
        return ModelAccess(
            patterns=list(patterns.patterns), custom=self.record.allowed_models is not None
        )

    @strawberry.field(description="The preset used when a conversation names none.")
    async def default_llm_config(self, info: Info) -> LlmConfigType | None:
        config = await (await info.context.loaders()).default_llm_config.load(self.record.id)
        return LlmConfigType.from_record(config) if config else None

    @classmethod
    def from_record(cls, user: UserRecord) -> UserType:
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
            email_verified=user.email_verified,
            has_password=user.has_password,
            record=user,
        )


@strawberry.type
class AuthPayload:
    access_token: str = strawberry.field(
        description=(
            "Short-lived JWT for the Authorization header and the websocket "
            "connection_init payload."
        )
    )
    access_token_expires_at: datetime
    refresh_token: str = strawberry.field(
        description="Single-use: every refreshToken call returns a new one and retires the old one."
    )
    refresh_token_expires_at: datetime
    user: UserType

    @classmethod
    def from_session(cls, session: Session) -> AuthPayload:
        return cls(
            access_token=session.access.token,
            access_token_expires_at=session.access.expires_at,
            refresh_token=session.refresh.token,
            refresh_token_expires_at=session.refresh.expires_at,
            user=UserType.from_record(session.user),
        )


@strawberry.input
class RegisterInput:
    email: str
    password: str
    display_name: str | None = None


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.input
class UpdateProfileInput:
    display_name: str | None = None
    default_llm_config_id: strawberry.Maybe[strawberry.ID | None]


def link_base(info: Info) -> str:
    """Where mailed links point: the frontend (`GQL_CHAT_PUBLIC_URL`), else this server."""
    return public_base_url(info)


@strawberry.type(name="Session", description="One of the user's sign-ins (a login's tokens).")
class LoginSession:
    id: strawberry.ID
    created_at: datetime = strawberry.field(description="When it signed in.")
    last_used_at: datetime = strawberry.field(
        description="When it signed in or last refreshed its tokens."
    )
    user_agent: str | None = strawberry.field(description="The client's, at sign-in.")
    client_ip: str = strawberry.field(description="The client's address at sign-in.")
    current: bool = strawberry.field(description="The sign-in of this request.")

    @classmethod
    def of(cls, login: LoginRecord, current_family: str | None) -> LoginSession:
        return cls(
            id=strawberry.ID(login.id),
            created_at=login.created_at,
            last_used_at=login.last_used_at,
            user_agent=login.device.user_agent,
            client_ip=login.device.client_ip,
            current=login.id == current_family,
        )


@strawberry.type
class AccountQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info) -> UserType:
        return UserType.from_record(await info.context.require_user())

    @strawberry.field(
        description="Where you are signed in: the sign-ins that can still refresh, latest first.",
        permission_classes=[IsAuthenticated],
    )
    async def sessions(self, info: Info) -> list[LoginSession]:
        principal = await info.context.require_principal()
        logins = await info.context.services.accounts.logins(principal.user)
        return [LoginSession.of(login, principal.family_id) for login in logins]


@strawberry.type
class AccountMutation:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        session = await info.context.services.accounts.register(
            input.email,
            input.password,
            input.display_name,
            info.context.client_ip,
            info.context.user_agent,
        )
        await info.context.services.email_accounts.send_verification(session.user, link_base(info))
        return AuthPayload.from_session(session)

    @strawberry.mutation(
        description="Unknown email and wrong password fail alike: UNAUTHENTICATED."
    )
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        session = await info.context.services.accounts.login(
            input.email, input.password, info.context.client_ip, info.context.user_agent
        )
        return AuthPayload.from_session(session)

    @strawberry.mutation(
        description=(
            "Reusing a retired refresh token revokes every token of that login (reuse detection)."
        )
    )
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        session = await info.context.services.accounts.refresh(refresh_token)
        return AuthPayload.from_session(session)

    @strawberry.mutation
    async def logout(self, info: Info, refresh_token: str) -> bool:
        await info.context.services.accounts.logout(refresh_token)
        return True

    @strawberry.mutation(
        description=(
            "Confirms the address a verification link was sent to (its `token`): a new "
            "address (`changeEmail`) then becomes the account's."
        )
    )
    async def verify_email(self, info: Info, token: str) -> UserType:
        user = await info.context.services.email_accounts.verify(token, link_base(info))
        return UserType.from_record(user)

    @strawberry.mutation(
        description=(
            "Mails a confirmation link to `newEmail`; the address changes once it is used "
            "(through `verifyEmail`), and the old one is told. Needs the password."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def change_email(self, info: Info, new_email: str, password: str) -> bool:
        await info.context.services.email_accounts.change_email(
            await info.context.require_principal(), new_email, password, link_base(info)
        )
        return True

    @strawberry.mutation(
        description="Sends the verification link again (rate-limited).",
        permission_classes=[IsAuthenticated],
    )
    async def resend_verification(self, info: Info) -> bool:
        await info.context.services.email_accounts.resend_verification(
            await info.context.require_user(), link_base(info)
        )
        return True

    @strawberry.mutation(
        description=(
            "Mails a password reset link to the address if it has an account; answers true "
            "either way, as fast (rate-limited per address and per IP)."
        )
    )
    async def request_password_reset(self, info: Info, email: str) -> bool:
        await info.context.services.email_accounts.request_reset(
            email, info.context.client_ip, link_base(info)
        )
        return True

    @strawberry.mutation(
        description=(
            "Sets a new password with a reset link's `token` (once), ends every sign-in and "
            "returns a fresh one."
        )
    )
    async def reset_password(self, info: Info, token: str, new_password: str) -> AuthPayload:
        session = await info.context.services.email_accounts.reset(
            token, new_password, info.context.device
        )
        return AuthPayload.from_session(session)

    @strawberry.mutation(
        description=(
            "Ends one of your sign-ins (`sessions`): its refresh token no longer works, and its "
            "websockets close. NOT_FOUND for one that is not yours or has ended."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def revoke_session(self, info: Info, id: strawberry.ID) -> bool:
        await info.context.services.accounts.revoke_login(await info.context.require_user(), id)
        return True

    @strawberry.mutation(
        description="Revokes every refresh token of the user.", permission_classes=[IsAuthenticated]
    )
    async def logout_all(self, info: Info) -> bool:
        await info.context.services.accounts.logout_all(await info.context.require_user())
        return True

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserType:
        updated = await info.context.services.accounts.update_profile(
            await info.context.require_user(),
            input.display_name,
            given(input.default_llm_config_id),
        )
        return UserType.from_record(updated)

    @strawberry.mutation(
        description="Revokes every other refresh token of the user.",
        permission_classes=[IsAuthenticated],
    )
    async def change_password(self, info: Info, current_password: str, new_password: str) -> bool:
        principal = await info.context.require_principal()
        await info.context.services.accounts.change_password(
            principal.user, current_password, new_password, keep_family=principal.family_id
        )
        return True

    @strawberry.mutation(
        description=(
            "Deletes the user and everything the user owns. Needs the password; an account "
            "without one (signed up through a provider) needs a sign-in of the last 10 "
            "minutes instead (FORBIDDEN, reason SIGN_IN_AGAIN, otherwise)."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def delete_account(self, info: Info, password: str) -> bool:
        await info.context.services.accounts.delete_account(
            await info.context.require_principal(), password
        )
        return True
