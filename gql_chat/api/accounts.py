"""Accounts: `me`, registration, sign-in, token rotation, profile and password."""

from __future__ import annotations

from datetime import datetime

import strawberry
from bson import ObjectId

from gql_chat.api.context import Info
from gql_chat.api.inputs import given
from gql_chat.api.llm_configs import LlmConfigType
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.users import Role as RoleValue
from gql_chat.domain.users import UserRecord
from gql_chat.services.accounts import Session

Role = strawberry.enum(RoleValue, name="Role")


@strawberry.type(name="User")
class UserType:
    id: strawberry.ID
    email: str
    display_name: str
    role: Role  # type: ignore[valid-type]
    disabled: bool
    created_at: datetime

    user_id: strawberry.Private[ObjectId]

    @strawberry.field(description="The preset used when a conversation names none.")
    async def default_llm_config(self, info: Info) -> LlmConfigType | None:
        config = await (await info.context.loaders()).default_llm_config.load(self.user_id)
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
            user_id=user.id,
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


@strawberry.type
class AccountQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info) -> UserType:
        return UserType.from_record(await info.context.require_user())


@strawberry.type
class AccountMutation:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        session = await info.context.services.accounts.register(
            input.email, input.password, input.display_name, info.context.client_ip
        )
        return AuthPayload.from_session(session)

    @strawberry.mutation(
        description="Unknown email and wrong password fail alike: UNAUTHENTICATED."
    )
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        session = await info.context.services.accounts.login(
            input.email, input.password, info.context.client_ip
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
        description="Deletes the user and everything the user owns.",
        permission_classes=[IsAuthenticated],
    )
    async def delete_account(self, info: Info, password: str) -> bool:
        await info.context.services.accounts.delete_account(
            await info.context.require_user(), password
        )
        return True
