"""Signing in with an OpenID Connect provider, through the public surface: a browser (an HTTP
client following redirects, keeping cookies) goes from `/auth/oidc/{provider}/login` to a real
provider on 127.0.0.1 and back to the frontend's return page, whose `code` the frontend
exchanges over GraphQL. Forged, replayed and tampered flows end on the return page with
`?error=` and sign no one in."""

from __future__ import annotations

import asyncio
import email
import logging
import random
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from bson import ObjectId
from oidc_provider_mock import run_server_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gql_chat.app import create_app
from gql_chat.services.single_sign_on import challenge_of
from tests.conftest import free_port, make_settings
from tests.fakes.oidc_provider import FakeOidcProvider, Forgery, ProviderUser
from tests.support import DEFAULT_PASSWORD, GraphQLClient, GraphQLResult, SignedIn, sign_up

RETURN_URL = "http://frontend.test/auth/callback"
EXCHANGE = """mutation($c: String!, $v: String!) { exchangeSignInCode(code: $c, codeVerifier: $v) {
    accessToken refreshToken user { id email emailVerified hasPassword displayName } } }"""
ME = "query { me { id email emailVerified hasPassword } }"
IDENTITIES = "query { identities { id provider email } }"
LINK = "mutation($p: String!, $pw: String) { linkIdentity(provider: $p, password: $pw) }"
UNLINK = "mutation($id: ID!) { unlinkIdentity(id: $id) }"
COMPLETE_LINK = """mutation($c: String!, $v: String!) {
    completeIdentityLink(code: $c, codeVerifier: $v) { id provider email } }"""
LOGIN = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
    accessToken } }"""
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"


async def frontend_page(request: Request) -> Response:
    """The frontend's return page: shows what it was given."""
    return JSONResponse(dict(request.query_params))


class Browser:
    """One browser: its cookies, and redirects followed across the app (in process), the
    provider (over 127.0.0.1) and the frontend."""

    def __init__(self, app: Starlette) -> None:
        frontend = Starlette(routes=[Route("/auth/callback", frontend_page)])
        self.http = httpx.AsyncClient(
            base_url="http://testserver",
            follow_redirects=True,
            mounts={
                "http://testserver": httpx.ASGITransport(app=app, client=("127.0.0.1", 123)),
                "http://frontend.test": httpx.ASGITransport(app=frontend),
            },
        )
        self.gql = GraphQLClient(self.http)
        self.verifier = secrets.token_urlsafe(32)  # the frontend's, kept for the exchange
        self.challenge = challenge_of(self.verifier)

    def login_path(self, provider: str = "acme") -> str:
        return f"/auth/oidc/{provider}/login?code_challenge={self.challenge}"

    async def sign_in(self, provider: str = "acme") -> dict[str, str]:
        """What the return page was given at the end of the redirects."""
        response = await self.http.get(self.login_path(provider))
        assert str(response.url).startswith(RETURN_URL), response.url
        landed: dict[str, str] = response.json()
        return landed

    async def exchange(self, code: str, verifier: str | None = None) -> GraphQLResult:
        """The frontend's `exchangeSignInCode`, with its own verifier unless told."""
        return await self.gql.execute(EXCHANGE, {"c": code, "v": verifier or self.verifier})

    async def signed_in(self, provider: str = "acme") -> dict[str, Any]:
        """A whole sign-in, ended by the frontend's code exchange: the `AuthPayload`."""
        landed = await self.sign_in(provider)
        assert "code" in landed, landed
        payload: dict[str, Any] = (await self.exchange(landed["code"])).ok()["exchangeSignInCode"]
        return payload

    async def link(self, user: SignedIn, url: str) -> dict[str, Any]:
        """A `linkIdentity` URL followed, and its return page's code redeemed by `user`: the
        identity, or what the return page or the redemption said."""
        landed: dict[str, Any] = (
            await self.http.get(f"{url}&code_challenge={self.challenge}")
        ).json()
        if "link_code" not in landed:
            return landed
        result = await user.execute(COMPLETE_LINK, {"c": landed["link_code"], "v": self.verifier})
        return (
            result.data["completeIdentityLink"] if not result.errors else {"code": code_of(result)}
        )


@pytest.fixture
async def provider() -> AsyncIterator[FakeOidcProvider]:
    fake = FakeOidcProvider()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def sso_app(provider: FakeOidcProvider, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = make_settings(
        oidc_providers={
            "acme": provider.settings(display_name="Acme SSO"),
            "down": provider.settings(issuer=f"http://127.0.0.1:{free_port()}"),
            "lax": provider.settings(trust_email_verified=False),
        },
        oidc_return_url=RETURN_URL,
        mail_outbox=tmp_path / "outbox",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def browser(sso_app: Starlette) -> AsyncIterator[Browser]:
    browser = Browser(sso_app)
    async with browser.http:
        yield browser


async def user_of(browser: Browser, payload: dict[str, Any]) -> SignedIn:
    return SignedIn(
        browser.gql,
        payload["accessToken"],
        payload["refreshToken"],
        payload["user"]["id"],
        payload["user"]["email"],
    )


def code_of(result: Any) -> str:
    assert result.errors, result.data
    code: str = result.errors[0]["extensions"]["code"]
    return code


def _mailed_link(outbox: Path, address: str, page: str) -> str | None:
    for file in outbox.glob("*.eml"):
        mail = email.message_from_bytes(file.read_bytes())
        text = next(
            part.get_payload(decode=True)
            for part in mail.walk()
            if part.get_content_type() == "text/plain"
        )
        assert isinstance(text, bytes)
        found = re.search(rf"/{page}\?token=([\w\-%]+)", text.decode())
        if mail["To"] == address and found:
            file.unlink()
            return unquote(found.group(1))
    return None


async def mailed_token(outbox: Path, address: str, page: str) -> str:
    """The token of a `page` link mailed to `address` (from the development outbox)."""
    for _ in range(250):
        if token := await asyncio.to_thread(_mailed_link, outbox, address, page):
            return token
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {page} mail to {address}")


async def test_a_new_provider_account_signs_up_and_signs_in_again_as_the_same_user(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    providers = (
        await browser.gql.execute("{ signInProviders { name displayName loginUrl } }")
    ).ok()
    assert providers["signInProviders"] == [
        {
            "name": "acme",
            "displayName": "Acme SSO",
            "loginUrl": "http://testserver/auth/oidc/acme/login",
        },
        {
            "name": "down",
            "displayName": "down",
            "loginUrl": "http://testserver/auth/oidc/down/login",
        },
        {"name": "lax", "displayName": "lax", "loginUrl": "http://testserver/auth/oidc/lax/login"},
    ]
    first = await browser.signed_in()
    assert first["user"] == {
        "id": first["user"]["id"],
        "email": "sso@example.com",
        "emailVerified": True,  # the provider vouched for it
        "hasPassword": False,
        "displayName": "Provider User",
    }
    user = await user_of(browser, first)
    assert (await user.ok(IDENTITIES))["identities"] == [
        {
            "id": (await user.ok(IDENTITIES))["identities"][0]["id"],
            "provider": "acme",
            "email": "sso@example.com",
        }
    ]
    again = await browser.signed_in()
    assert again["user"]["id"] == first["user"]["id"]
    assert len((await user.ok(IDENTITIES))["identities"]) == 1
    # Both sign-ins are sessions of their own, and the tokens work.
    assert len((await user.ok("{ sessions { id } }"))["sessions"]) == 2
    assert (await browser.gql.execute(REFRESH, {"t": again["refreshToken"]})).ok()


async def test_a_sign_in_code_works_once(browser: Browser) -> None:
    landed = await browser.sign_in()
    assert (await browser.exchange(landed["code"])).ok()
    replayed = await browser.exchange(landed["code"])
    assert code_of(replayed) == "BAD_USER_INPUT"
    assert code_of(await browser.exchange("made-up")) == "BAD_USER_INPUT"


async def test_a_forged_state_signs_no_one_in(browser: Browser, provider: FakeOidcProvider) -> None:
    await browser.http.get(browser.login_path(), follow_redirects=False)  # a cookie, a flow
    response = await browser.http.get(
        "/auth/oidc/acme/callback", params={"state": "forged", "code": "whatever"}
    )
    assert response.json() == {"error": "invalid_request"}
    assert provider.token_requests == 0  # nothing was sent to the provider


async def test_a_callback_opened_in_another_browser_fails(
    sso_app: Starlette, browser: Browser, provider: FakeOidcProvider
) -> None:
    """A login CSRF: the attacker's own callback URL, opened by the victim's browser."""
    attacker_start = await browser.http.get(browser.login_path(), follow_redirects=False)
    to_provider = await browser.http.get(attacker_start.headers["location"], follow_redirects=False)
    callback = to_provider.headers["location"]
    victim = Browser(sso_app)
    async with victim.http:
        assert (await victim.http.get(callback)).json() == {"error": "invalid_request"}
        assert provider.token_requests == 0
        # Someone else holding the state cannot burn the flow: its own browser still ends it,
        landed = (await browser.http.get(callback)).json()
        # and its code is worthless to any frontend but the one that started the flow.
        assert code_of(await victim.exchange(landed["code"])) == "BAD_USER_INPUT"


async def test_a_replayed_callback_and_a_replayed_provider_code_fail(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    start = await browser.http.get(browser.login_path(), follow_redirects=False)
    callback = (await browser.http.get(start.headers["location"], follow_redirects=False)).headers[
        "location"
    ]
    cookies = dict(browser.http.cookies)
    assert "code" in (await browser.http.get(callback)).json()
    # The same callback again, with the cookie it had: its flow is gone.
    browser.http.cookies.update(cookies)
    assert (await browser.http.get(callback)).json() == {"error": "invalid_request"}
    # The provider's code in a fresh flow of this browser: the provider refuses it.
    old_code = re.search(r"code=([^&]+)", callback)
    assert old_code is not None
    fresh = await browser.http.get(browser.login_path(), follow_redirects=False)
    fresh_callback = (
        await browser.http.get(fresh.headers["location"], follow_redirects=False)
    ).headers["location"]
    state = re.search(r"state=([^&]+)", fresh_callback)
    assert state is not None
    replayed = await browser.http.get(
        f"/auth/oidc/acme/callback?state={state.group(1)}&code={old_code.group(1)}"
    )
    assert replayed.json() == {"error": "invalid_request"}


@pytest.mark.parametrize("forgery", list(Forgery))
async def test_an_id_token_that_fails_validation_signs_no_one_in(
    browser: Browser, provider: FakeOidcProvider, forgery: Forgery
) -> None:
    provider.forge = forgery
    assert await browser.sign_in() == {"error": "invalid_token"}
    provider.forge = None
    assert "code" in await browser.sign_in()  # the same flow, untampered, works


async def test_an_unverified_provider_address_never_links_to_an_existing_account(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    owner = await sign_up(browser.gql, "owner@example.com")
    provider.user = ProviderUser(sub="intruder", email="owner@example.com", email_verified=False)
    assert await browser.sign_in() == {"error": "email_not_verified"}
    assert (await owner.ok(IDENTITIES))["identities"] == []
    assert (await owner.ok(ME))["me"]["hasPassword"] is True
    assert (await browser.gql.execute(LOGIN, {"e": owner.email, "p": DEFAULT_PASSWORD})).ok()


async def test_a_verified_address_links_to_the_verified_account_that_has_it(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    owner = await sign_up(browser.gql, "verified@example.com")
    outbox = sso_app.state.services.settings.mail_outbox
    token = await mailed_token(outbox, owner.email, "verify-email")
    verify = "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }"
    assert (await browser.gql.execute(verify, {"t": token})).ok()
    provider.user = ProviderUser(sub="owner-at-acme", email="Verified@Example.com")
    payload = await browser.signed_in()
    assert payload["user"]["id"] == owner.user_id
    assert payload["user"]["hasPassword"] is True  # nothing of the account changed
    assert (await browser.gql.execute(REFRESH, {"t": owner.refresh_token})).ok()
    [identity] = (await owner.ok(IDENTITIES))["identities"]
    assert identity["provider"] == "acme"


async def test_a_pre_registered_unverified_account_is_taken_over_by_the_proven_owner(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    """An attacker registers the victim's address with a password; the victim then signs in
    through a provider that vouches for it: the attacker's password and sessions end."""
    attacker = await sign_up(browser.gql, "victim@example.com")
    provider.user = ProviderUser(sub="victim-at-acme", email="victim@example.com")
    payload = await browser.signed_in()
    assert payload["user"]["id"] == attacker.user_id
    assert payload["user"]["hasPassword"] is False
    assert payload["user"]["emailVerified"] is True
    assert code_of(await browser.gql.execute(REFRESH, {"t": attacker.refresh_token})) == (
        "UNAUTHENTICATED"
    )
    assert code_of(await attacker.execute(ME)) == "UNAUTHENTICATED"
    login = await browser.gql.execute(LOGIN, {"e": attacker.email, "p": DEFAULT_PASSWORD})
    assert code_of(login) == "UNAUTHENTICATED"


async def test_a_password_reset_removes_identities_linked_on_an_unproven_address(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    """The other way round: an attacker's provider account claims the victim's address
    without vouching for it; the victim's password reset proves the mailbox and unlinks it."""
    provider.user = ProviderUser(sub="squatter", email="mailbox@example.com", email_verified=False)
    squatter = await user_of(browser, await browser.signed_in())
    assert (await squatter.ok(ME))["me"]["emailVerified"] is False
    # A second provider account of theirs, linked while the address is still unproven.
    url = (await squatter.ok(LINK, {"p": "acme"}))["linkIdentity"]
    provider.user = ProviderUser(sub="squatter-2", email="other@squat.test")
    assert (await browser.link(squatter, url))["email"] == "other@squat.test"
    outbox = sso_app.state.services.settings.mail_outbox
    await mailed_token(outbox, "mailbox@example.com", "verify-email")  # sent to the mailbox
    request_reset = "mutation($e: String!) { requestPasswordReset(email: $e) }"
    assert (await browser.gql.execute(request_reset, {"e": "mailbox@example.com"})).ok()
    token = await mailed_token(outbox, "mailbox@example.com", "reset-password")
    reset = """mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) {
        accessToken user { hasPassword emailVerified } } }"""
    done = (await browser.gql.execute(reset, {"t": token, "p": "the owner's new password"})).ok()
    assert done["resetPassword"]["user"] == {"hasPassword": True, "emailVerified": True}
    owner_token = done["resetPassword"]["accessToken"]
    assert (await browser.gql.execute(IDENTITIES, token=owner_token)).ok() == {"identities": []}
    # The squatter's provider accounts no longer sign in to it, nor link to it.
    assert (await browser.signed_in())["user"]["email"] == "other@squat.test"  # a new account
    provider.user = ProviderUser(sub="squatter", email="mailbox@example.com", email_verified=False)
    assert await browser.sign_in() == {"error": "email_not_verified"}
    # One the owner links while signed in stays through the next reset, vouched for or not.
    owner = SignedIn(browser.gql, owner_token, "", "", "mailbox@example.com")
    link = await owner.ok(LINK, {"p": "acme", "pw": "the owner's new password"})
    provider.user = ProviderUser(sub="owner-work", email="owner@corp.test", email_verified=False)
    assert (await browser.link(owner, link["linkIdentity"]))["email"] == "owner@corp.test"
    assert (await browser.gql.execute(request_reset, {"e": "mailbox@example.com"})).ok()
    token = await mailed_token(outbox, "mailbox@example.com", "reset-password")
    done = (await browser.gql.execute(reset, {"t": token, "p": "yet another password"})).ok()
    after = await browser.gql.execute(IDENTITIES, token=done["resetPassword"]["accessToken"])
    assert [identity["email"] for identity in after.ok()["identities"]] == ["owner@corp.test"]


async def test_an_account_without_a_password_keeps_a_way_to_sign_in(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    user = await user_of(browser, await browser.signed_in())
    [only] = (await user.ok(IDENTITIES))["identities"]
    assert code_of(await user.execute(UNLINK, {"id": only["id"]})) == "CONFLICT"
    change = 'mutation { changePassword(currentPassword: "", newPassword: "long enough pw 1") }'
    assert code_of(await user.execute(change)) == "BAD_USER_INPUT"

    # Link a second provider account, through the browser, with a ticket.
    url = (await user.ok(LINK, {"p": "acme"}))["linkIdentity"]
    assert url.startswith("http://testserver/auth/oidc/acme/login?link=")
    provider.user = ProviderUser(sub="second-account", email="second@example.com")
    assert (await browser.link(user, url))["email"] == "second@example.com"
    identities = (await user.ok(IDENTITIES))["identities"]
    assert [identity["email"] for identity in identities] == [
        "sso@example.com",
        "second@example.com",
    ]
    assert (await browser.signed_in())["user"]["id"] == user.user_id  # the second one signs in
    # The ticket was used once.
    assert await browser.link(user, url) == {"error": "invalid_request"}

    # Two unlinks at once: at least one is refused (both, when each saw the other's delete
    # and put its own back), and what stays is what was not unlinked: never nothing.
    results = await asyncio.gather(
        *(user.execute(UNLINK, {"id": identity["id"]}) for identity in identities)
    )
    refused = [code_of(result) for result in results if result.errors]
    assert refused in (["CONFLICT"], ["CONFLICT", "CONFLICT"])
    left = (await user.ok(IDENTITIES))["identities"]
    assert len(left) == len(refused)


async def test_linking_needs_the_password_and_refuses_another_users_identity(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    taken = await browser.signed_in()  # sso@example.com's provider account is this user's
    other = await sign_up(browser.gql)
    assert code_of(await other.execute(LINK, {"p": "acme", "pw": "wrong password"})) == (
        "BAD_USER_INPUT"
    )
    assert code_of(await other.execute(LINK, {"p": "nope", "pw": DEFAULT_PASSWORD})) == "NOT_FOUND"
    url = (await other.ok(LINK, {"p": "acme", "pw": DEFAULT_PASSWORD}))["linkIdentity"]
    assert await browser.link(other, url) == {"code": "CONFLICT"}
    assert (await other.ok(IDENTITIES))["identities"] == []
    assert (await browser.signed_in())["user"]["id"] == taken["user"]["id"]


async def test_an_account_without_a_password_deletes_itself_after_a_recent_sign_in(
    browser: Browser,
) -> None:
    user = await user_of(browser, await browser.signed_in())
    assert (await user.ok('mutation { deleteAccount(password: "") }'))["deleteAccount"] is True
    # The provider account now makes a new user.
    again = await browser.signed_in()
    assert again["user"]["id"] != user.user_id


async def test_a_disabled_user_cannot_sign_in_through_a_provider(
    browser: Browser, sso_app: Starlette
) -> None:
    payload = await browser.signed_in()
    admin = await sign_up(browser.gql)
    await sso_app.state.services.accounts.create_admin(admin.email, "")
    disable = """mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }"""
    assert await admin.ok(disable, {"id": payload["user"]["id"]})
    assert await browser.sign_in() == {"error": "account_disabled"}


async def test_the_provider_refusing_or_unreachable_ends_on_the_return_page(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    provider.deny = True
    assert await browser.sign_in() == {"error": "access_denied"}
    provider.deny = False
    provider.email_in_id_token = False  # the address comes from the userinfo endpoint
    assert (await browser.signed_in())["user"]["email"] == "sso@example.com"
    provider.user = ProviderUser(sub="nameless", email="nameless.one@example.com", name=None)
    assert (await browser.signed_in())["user"]["displayName"] == "nameless.one"
    provider.user = ProviderUser(sub="no-address", email=None)
    assert await browser.sign_in() == {"error": "email_required"}
    assert (await browser.http.get("/auth/oidc/nope/login")).status_code == 404
    assert await browser.sign_in("down") == {"error": "provider_unavailable"}


async def test_codes_tokens_and_secrets_never_reach_the_log(
    browser: Browser, provider: FakeOidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx logs each request's URL and httpcore's trace its response headers: this test's
    # browser (the client here) follows redirects whose URLs carry the state and codes, and
    # those lines are not the server's. (The server's own requests to the provider, also
    # httpx's, carry no secret in a URL or header.)
    for client_logger in ("httpx", "httpcore"):
        caplog.set_level(logging.WARNING, logger=client_logger)
    start = await browser.http.get(browser.login_path(), follow_redirects=False)
    callback = (await browser.http.get(start.headers["location"], follow_redirects=False)).headers[
        "location"
    ]
    landed = (await browser.http.get(callback)).json()
    payload = (await browser.exchange(landed["code"])).ok()
    provider.forge = Forgery.FOREIGN_KEY
    assert await browser.sign_in() == {"error": "invalid_token"}
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    secrets_seen = [
        landed["code"],
        payload["exchangeSignInCode"]["accessToken"],
        provider.client_secret,
        *re.findall(r"(?:code|state)=([^&]+)", callback),
    ]
    leaked = [line for line in logged.splitlines() if any(s in line for s in secrets_seen)]
    assert leaked == []
    assert "invalid_token" in logged  # the failure itself is logged


async def test_a_third_party_provider_signs_users_in_through_its_own_login_form(
    tmp_path: Path,
) -> None:
    """oidc-provider-mock (another implementation: Flask and authlib's server, a registered
    client, nonces required) with its real authorization form, submitted as a user would."""
    with run_server_in_thread(require_client_registration=True, require_nonce=True) as server:
        issuer = f"http://localhost:{server.server_port}"
        async with httpx.AsyncClient(base_url=issuer) as admin:
            registered = await admin.post(
                "/oauth2/clients",
                json={"redirect_uris": ["http://testserver/auth/oidc/mock/callback"]},
            )
            client = registered.json()
            claims = {"email": "third@example.com", "email_verified": True, "name": "Third Party"}
            assert (await admin.put("/users/third-party-user", json=claims)).status_code == 204
        settings = make_settings(
            oidc_providers={
                "mock": {
                    "issuer": issuer,
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                }
            },
            oidc_return_url=RETURN_URL,
            mail_outbox=tmp_path,
        )
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            browser = Browser(application)
            async with browser.http:
                form = await browser.http.get(browser.login_path("mock"))
                assert form.status_code == 200
                assert "<form" in form.text  # the provider's own page
                landed = await browser.http.post(form.url, data={"sub": "third-party-user"})
                assert str(landed.url).startswith(RETURN_URL)
                code = landed.json()["code"]
                payload = (await browser.exchange(code)).ok()
                assert payload["exchangeSignInCode"]["user"] == {
                    "id": payload["exchangeSignInCode"]["user"]["id"],
                    "email": "third@example.com",
                    "emailVerified": True,
                    "hasPassword": False,
                    "displayName": "Third Party",
                }


async def test_an_unlink_racing_another_instances_unlink_is_undone(
    browser: Browser,
    provider: FakeOidcProvider,
    sso_app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both unlinks pass their check (two identities each saw), then both delete: the one
    that leaves none puts its identity back and is refused."""
    user = await user_of(browser, await browser.signed_in())
    url = (await user.ok(LINK, {"p": "acme"}))["linkIdentity"]
    provider.user = ProviderUser(sub="second-account", email="second@example.com")
    assert (await browser.link(user, url))["provider"] == "acme"
    first, second = (await user.ok(IDENTITIES))["identities"]
    store = sso_app.state.services.database.identities
    delete = store.delete

    async def delete_after_the_other_instance(user_id: Any, identity_id: Any) -> bool:
        await delete(user_id, ObjectId(second["id"]))  # its unlink got there first
        return bool(await delete(user_id, identity_id))

    monkeypatch.setattr(store, "delete", delete_after_the_other_instance)
    assert code_of(await user.execute(UNLINK, {"id": first["id"]})) == "CONFLICT"
    assert [identity["id"] for identity in (await user.ok(IDENTITIES))["identities"]] == [
        first["id"]
    ]


@dataclass
class ModelUser:
    """What the linking rules say a user is."""

    id: str
    has_password: bool
    verified: bool
    subjects: dict[str, bool] = field(default_factory=dict)
    """Its provider accounts, and whether each was linked on a vouched-for address."""


@pytest.mark.parametrize("seed", [3, 11])
async def test_random_sign_ins_and_registrations_follow_the_linking_rules(
    browser: Browser, provider: FakeOidcProvider, seed: int
) -> None:
    """Provider accounts (a few subjects, whose address and `email_verified` change at random)
    and password registrations, in random order: every outcome is the one the rules predict
    (a known subject signs in as its user; a new one joins the account of its address only when
    vouched for, taking over an unverified one, whose unproven provider accounts are unlinked;
    or makes a user), and no account is left without a way to sign in."""
    rng = random.Random(seed)
    addresses = ["a@rules.test", "b@rules.test", "c@rules.test"]
    users: dict[str, ModelUser] = {}  # by address
    owner_of: dict[str, str] = {}  # subject -> address of its user
    for _ in range(25):
        address = rng.choice(addresses)
        if rng.random() < 0.25:  # someone registers the address with a password
            result = await browser.gql.execute(
                """mutation($e: String!) { register(input: {email: $e,
                password: "a long enough password"}) { user { id } } }""",
                {"e": address},
            )
            if address in users:
                assert code_of(result) == "CONFLICT"
            else:
                user_id = result.ok()["register"]["user"]["id"]
                users[address] = ModelUser(user_id, has_password=True, verified=False)
            continue
        subject = f"subject-{rng.randrange(4)}"
        vouched = rng.random() < 0.6
        provider.user = ProviderUser(sub=subject, email=address, email_verified=vouched)
        landed = await browser.sign_in()
        if subject in owner_of:
            expected: ModelUser | str = users[owner_of[subject]]
        elif address in users:
            expected = users[address] if vouched else "email_not_verified"
        else:
            expected = users[address] = ModelUser("new", has_password=False, verified=vouched)
        if isinstance(expected, str):
            assert landed == {"error": expected}
            continue
        payload = (await browser.exchange(landed["code"])).ok()
        got = payload["exchangeSignInCode"]["user"]
        if subject not in owner_of:
            if expected.id == "new":
                expected.id = got["id"]
            elif not expected.verified:  # taken over by the proven owner of the address:
                expected.has_password = False  # its password ends, and so do the provider
                for unproven in [name for name, proven in expected.subjects.items() if not proven]:
                    del expected.subjects[unproven]  # accounts linked on the unproven address
                    del owner_of[unproven]
            owner_of[subject] = got["email"]
            expected.subjects[subject] = vouched
            expected.verified = expected.verified or vouched
        assert got["id"] == expected.id
        assert got["email"] == owner_of[subject]
        assert (got["hasPassword"], got["emailVerified"]) == (
            expected.has_password,
            expected.verified,
        )
        assert got["hasPassword"] or expected.subjects  # a way to sign in is left


async def test_a_login_needs_the_frontends_challenge_and_two_tabs_sign_in_at_once(
    browser: Browser,
) -> None:
    response = await browser.http.get("/auth/oidc/acme/login")
    assert response.json() == {"error": "invalid_request"}
    first = await browser.http.get(browser.login_path(), follow_redirects=False)
    second = await browser.http.get(browser.login_path(), follow_redirects=False)
    landed = [
        (await browser.http.get(start.headers["location"])).json() for start in (first, second)
    ]
    for tab in landed:
        assert (await browser.exchange(tab["code"])).ok()


async def test_a_link_is_completed_only_by_the_user_who_asked_for_it(
    sso_app: Starlette, browser: Browser, provider: FakeOidcProvider
) -> None:
    """A link URL opened elsewhere (sent to a victim, or leaked): the provider account signed
    in there is not linked to the URL's owner unless that owner completes it."""
    owner = await sign_up(browser.gql)
    url = (await owner.ok(LINK, {"p": "acme", "pw": DEFAULT_PASSWORD}))["linkIdentity"]
    other_browser = Browser(sso_app)
    async with other_browser.http:
        someone = await sign_up(other_browser.gql)
        provider.user = ProviderUser(sub="someone-at-acme", email="someone@example.com")
        assert await other_browser.link(someone, url) == {"code": "FORBIDDEN"}
        assert (await someone.ok(IDENTITIES))["identities"] == []
    assert (await owner.ok(IDENTITIES))["identities"] == []


async def test_an_attackers_links_and_codes_end_when_the_owner_proves_the_address(
    browser: Browser, provider: FakeOidcProvider
) -> None:
    """The attacker pre-registers the victim's address, links their own provider account,
    and keeps a sign-in code of a squatting provider account unexchanged; the victim then
    signs in through a provider that vouches for the address: all of it ends."""
    attacker = await sign_up(browser.gql, "prey@example.com")
    url = (await attacker.ok(LINK, {"p": "acme", "pw": DEFAULT_PASSWORD}))["linkIdentity"]
    provider.user = ProviderUser(sub="attacker", email="attacker@evil.test", email_verified=False)
    assert (await browser.link(attacker, url))["email"] == "attacker@evil.test"
    kept = (await browser.sign_in())["code"]  # signs in to prey@'s account, not exchanged

    provider.user = ProviderUser(sub="prey", email="prey@example.com")
    victim = await browser.signed_in()
    assert victim["user"]["id"] == attacker.user_id
    assert code_of(await browser.exchange(kept)) == "BAD_USER_INPUT"
    provider.user = ProviderUser(sub="attacker", email="attacker@evil.test", email_verified=False)
    assert (await browser.signed_in())["user"]["id"] != attacker.user_id  # an account of its own
    owner = await user_of(browser, victim)
    assert [identity["email"] for identity in (await owner.ok(IDENTITIES))["identities"]] == [
        "prey@example.com"
    ]


async def test_a_vouched_sign_in_ends_links_made_before_the_address_was_verified(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    """A squatter's account on the victim's address, whose verification link the victim
    followed: the victim's vouched sign-in joins it and ends the squatter's link."""
    provider.user = ProviderUser(sub="squatter", email="clicker@example.com", email_verified=False)
    squatter = await user_of(browser, await browser.signed_in())
    outbox = sso_app.state.services.settings.mail_outbox
    token = await mailed_token(outbox, "clicker@example.com", "verify-email")
    verify = "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }"
    assert (await browser.gql.execute(verify, {"t": token})).ok()

    provider.user = ProviderUser(sub="clicker", email="clicker@example.com")
    owner = await user_of(browser, await browser.signed_in())
    assert owner.user_id == squatter.user_id
    assert code_of(await squatter.execute(ME)) == "UNAUTHENTICATED"
    assert [identity["email"] for identity in (await owner.ok(IDENTITIES))["identities"]] == [
        "clicker@example.com"
    ]


async def test_administrators_and_untrusted_providers_never_join_an_account(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    admin = await sign_up(browser.gql, "boss@example.com")
    await sso_app.state.services.accounts.create_admin(admin.email, "")
    provider.user = ProviderUser(sub="boss-at-acme", email="boss@example.com")
    assert await browser.sign_in() == {"error": "link_refused"}
    member = await sign_up(browser.gql, "member@example.com")
    provider.user = ProviderUser(sub="member-at-lax", email="member@example.com")
    assert await browser.sign_in("lax") == {"error": "email_not_verified"}  # not believed
    assert (await member.ok(IDENTITIES))["identities"] == []


async def test_provider_sign_ins_links_and_resets_are_audited(
    browser: Browser, provider: FakeOidcProvider, sso_app: Starlette
) -> None:
    admin = await sign_up(browser.gql)
    await sso_app.state.services.accounts.create_admin(admin.email, "")
    provider.user = ProviderUser(sub="audited", email="audited@example.com")
    user = await user_of(browser, await browser.signed_in())
    url = (await user.ok(LINK, {"p": "acme"}))["linkIdentity"]
    provider.user = ProviderUser(sub="audited-2", email="second@example.com")
    second = await browser.link(user, url)
    await user.ok(UNLINK, {"id": second["id"]})
    provider.forge = Forgery.EXPIRED
    assert await browser.sign_in() == {"error": "invalid_token"}
    provider.forge = None
    outbox = sso_app.state.services.settings.mail_outbox
    request_reset = "mutation($e: String!) { requestPasswordReset(email: $e) }"
    assert (await browser.gql.execute(request_reset, {"e": "audited@example.com"})).ok()
    token = await mailed_token(outbox, "audited@example.com", "reset-password")
    reset = "mutation($t: String!) { resetPassword(token: $t, newPassword: $t) { accessToken } }"
    assert (await browser.gql.execute(reset, {"t": token})).ok()

    log = """query($u: ID) { auditLog(first: 50, userId: $u) { edges { node {
        action outcome actorId subjectId details { name value } } } } }"""

    def summary(found: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
        return [
            (
                edge["node"]["action"],
                edge["node"]["outcome"],
                {d["name"]: d["value"] for d in edge["node"]["details"] if d["name"] != "session"},
            )
            for edge in reversed(found["auditLog"]["edges"])
        ]

    assert summary(await admin.ok(log, {"u": user.user_id})) == [
        ("ACCOUNT_CREATED", "SUCCESS", {"method": "provider", "provider": "acme"}),
        ("IDENTITY_LINKED", "SUCCESS", {"provider": "acme", "via": "sign_in"}),
        ("SIGN_IN", "SUCCESS", {"method": "provider", "provider": "acme"}),
        ("IDENTITY_LINKED", "SUCCESS", {"provider": "acme", "via": "link"}),
        ("IDENTITY_UNLINKED", "SUCCESS", {"provider": "acme"}),
        ("PASSWORD_RESET_REQUESTED", "SUCCESS", {}),
        ("PASSWORD_RESET", "SUCCESS", {}),
    ]
    failures = [
        entry for entry in summary(await admin.ok(log, {"u": None})) if entry[1] == "FAILURE"
    ]
    assert failures == [
        (
            "SIGN_IN",
            "FAILURE",
            {"method": "provider", "provider": "acme", "reason": "invalid_token"},
        )
    ]
