"""Signing in through OpenID Connect providers: the providers offered, the code exchange that
ends a provider sign-in, and the user's linked identities."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import strawberry

from gql_chat.api.accounts import AuthPayload
from gql_chat.api.context import Info
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.api.provider_sign_ins import login_url
from gql_chat.domain.identities import IdentityRecord


@strawberry.type(description="An OpenID Connect provider this server signs users in with.")
class SignInProvider:
    name: str
    display_name: str
    login_url: str = strawberry.field(
        description=(
            "Send the browser here (a full-page navigation) with `?code_challenge=` "
            "(base64url of the SHA-256 of a random verifier the frontend keeps) to sign in; "
            "it comes back to the frontend's return page with `?code=` for "
            "exchangeSignInCode, or `?error=`."
        )
    )


@strawberry.type(name="Identity", description="A provider account you can sign in with.")
class IdentityType:
    id: strawberry.ID
    provider: str
    email: str | None = strawberry.field(description="The address the provider last gave.")
    created_at: datetime = strawberry.field(description="When it was linked.")
    last_used_at: datetime = strawberry.field(description="When it last signed in.")

    @classmethod
    def from_record(cls, identity: IdentityRecord) -> IdentityType:
        return cls(
            id=strawberry.ID(str(identity.id)),
            provider=identity.provider,
            email=identity.email,
            created_at=identity.created_at,
            last_used_at=identity.last_used_at,
        )


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The providers to offer on the sign-in page.")
    def sign_in_providers(self, info: Info) -> list[SignInProvider]:
        settings = info.context.services.settings
        return [
            SignInProvider(
                name=provider.name,
                display_name=provider.display_name,
                login_url=login_url(settings, info.context.request, provider.name),
            )
            for provider in info.context.services.single_sign_on.providers()
        ]

    @strawberry.field(
        description="Your linked provider accounts, oldest first.",
        permission_classes=[IsAuthenticated],
    )
    async def identities(self, info: Info) -> list[IdentityType]:
        user = await info.context.require_user()
        identities = await info.context.services.single_sign_on.identities(user)
        return [IdentityType.from_record(identity) for identity in identities]


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(
        description=(
            "Ends a provider sign-in: the one-time `code` the return page received (valid "
            "for a minute, once), with the `codeVerifier` whose challenge the frontend gave "
            "loginUrl, for the usual tokens. BAD_USER_INPUT when used, expired or not this "
            "frontend's."
        )
    )
    async def exchange_sign_in_code(self, info: Info, code: str, code_verifier: str) -> AuthPayload:
        session = await info.context.services.single_sign_on.exchange(
            code, code_verifier, info.context.device
        )
        return AuthPayload.from_session(session)

    @strawberry.mutation(
        description=(
            "Starts linking a provider account to yours: a URL (valid for 5 minutes, once) "
            "to send the browser to, with `&code_challenge=` appended as for loginUrl; it "
            "comes back with `?link_code=` for completeIdentityLink, or `?error=`. Needs your "
            "password; an account without one needs a sign-in of the last 10 minutes."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def link_identity(self, info: Info, provider: str, password: str | None = None) -> str:
        ticket = await info.context.services.single_sign_on.link_ticket(
            await info.context.require_principal(), provider, password or ""
        )
        start = login_url(info.context.services.settings, info.context.request, provider)
        return f"{start}?link={quote(ticket)}"

    @strawberry.mutation(
        description=(
            "Ends a link: the return page's `link_code` with the frontend's `codeVerifier`, "
            "by the user who started it (FORBIDDEN otherwise). CONFLICT when that provider "
            "account is another user's."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def complete_identity_link(
        self, info: Info, code: str, code_verifier: str
    ) -> IdentityType:
        identity = await info.context.services.single_sign_on.complete_link(
            await info.context.require_principal(), code, code_verifier
        )
        return IdentityType.from_record(identity)

    @strawberry.mutation(
        description=(
            "Removes a linked provider account. CONFLICT when it is your only way to sign in "
            "(no password and no other identity)."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def unlink_identity(self, info: Info, id: strawberry.ID) -> bool:
        await info.context.services.single_sign_on.unlink(await info.context.require_user(), id)
        return True
