"""Email verification and password reset through the public API, with mail delivered to a real
SMTP server (aiosmtpd) on 127.0.0.1 and read from there; the development outbox; and mail
turned off in production without SMTP."""

from __future__ import annotations

import asyncio
import email
import re
import socket
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from gql_chat.config import Environment, Settings
from gql_chat.errors import Forbidden
from gql_chat.wiring import build_mailer
from tests.conftest import LiveServer, live_server_of, make_settings
from tests.support import DEFAULT_PASSWORD, GraphQLClient, SignedIn, sign_up

ME = "query { me { email emailVerified } }"
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }"
RESEND = "mutation { resendVerification }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"
RESET = """mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) {
    accessToken refreshToken user { email emailVerified } } }"""
LOGIN = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
    accessToken } }"""
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
SEND = """mutation { sendMessage(input: {content: "hello"}) { assistantMessage { id } } }"""
NEW_PASSWORD = "a brand new long password"


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    async def next_for(self, address: str, within: float = 10.0) -> Message:
        deadline = time.monotonic() + within
        while True:
            for message in self.messages:
                if message["To"] == address:
                    self.messages.remove(message)
                    return message
            assert time.monotonic() < deadline, f"no mail to {address}"
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings(inbox: tuple[Inbox, int]) -> Settings:
    return make_settings(
        smtp_url=f"smtp://127.0.0.1:{inbox[1]}",
        public_url="https://chat.example.com",
        offline_token_delay=0.0,
    )


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


def link_token(message: Message, page: str) -> str:
    """The token of the link in the mail's text part (and the same link in its HTML)."""
    parts: dict[str, bytes] = {}
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts[part.get_content_type()] = payload
    text = parts["text/plain"].decode()
    found = re.search(rf"https://chat\.example\.com/{page}\?token=([\w\-%]+)", text)
    assert found, text
    assert found.group(0).encode() in parts["text/html"]
    return found.group(1)


def code_of(result: Any) -> str:
    assert result.errors, result.data
    code: str = result.errors[0]["extensions"]["code"]
    return code


async def test_registering_mails_a_link_that_verifies_the_address_once(
    user: SignedIn, inbox: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    mail = await inbox[0].next_for(user.email)
    assert mail["Subject"] == "Confirm your email address"
    token = link_token(mail, "verify-email")
    assert (await user.ok(ME))["me"]["emailVerified"] is False

    verified = (await user.gql.execute(VERIFY, {"t": token})).ok()["verifyEmail"]

    assert verified == {"email": user.email, "emailVerified": True}
    assert (await user.ok(ME))["me"]["emailVerified"] is True
    assert code_of(await user.gql.execute(VERIFY, {"t": token})) == "BAD_USER_INPUT"
    assert code_of(await user.gql.execute(VERIFY, {"t": "forged"})) == "BAD_USER_INPUT"
    # The server's log, not the test SMTP server's (aiosmtpd's `mail.log` names recipients).
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.name != "mail.log"
    )
    assert token not in logged
    assert user.email not in logged


async def test_a_verification_can_be_sent_again(user: SignedIn, inbox: tuple[Inbox, int]) -> None:
    first = link_token(await inbox[0].next_for(user.email), "verify-email")
    assert (await user.ok(RESEND))["resendVerification"] is True
    second = link_token(await inbox[0].next_for(user.email), "verify-email")
    assert second != first
    assert (await user.gql.execute(VERIFY, {"t": first})).ok()["verifyEmail"]["emailVerified"]


async def test_a_password_reset_ends_every_sign_in_and_signs_in_afresh(
    user: SignedIn, inbox: tuple[Inbox, int], live_gql: GraphQLClient
) -> None:
    await inbox[0].next_for(user.email)  # the verification
    unknown = await live_gql.execute(REQUEST_RESET, {"e": "nobody@example.com"})
    known = await live_gql.execute(REQUEST_RESET, {"e": user.email.upper()})
    assert unknown.ok() == known.ok() == {"requestPasswordReset": True}
    mail = await inbox[0].next_for(user.email)
    assert mail["Subject"] == "Reset your password"
    token = link_token(mail, "reset-password")
    short = await live_gql.execute(RESET, {"t": token, "p": "short"})
    assert code_of(short) == "BAD_USER_INPUT"  # and the link still works:

    reset = (await live_gql.execute(RESET, {"t": token, "p": NEW_PASSWORD})).ok()["resetPassword"]

    assert reset["user"] == {"email": user.email, "emailVerified": True}
    assert (await live_gql.execute(ME, token=reset["accessToken"])).ok()["me"]["email"]
    assert code_of(await live_gql.execute(ME, token=user.token)) == "UNAUTHENTICATED"
    old_refresh = await live_gql.execute(REFRESH, {"t": user.refresh_token})
    assert code_of(old_refresh) == "UNAUTHENTICATED"
    old_password = await live_gql.execute(LOGIN, {"e": user.email, "p": DEFAULT_PASSWORD})
    assert code_of(old_password) == "UNAUTHENTICATED"
    assert (await live_gql.execute(LOGIN, {"e": user.email, "p": NEW_PASSWORD})).ok()
    again = await live_gql.execute(RESET, {"t": token, "p": NEW_PASSWORD + "!"})
    assert code_of(again) == "BAD_USER_INPUT"
    await asyncio.sleep(0.3)
    assert not any(m["To"] == "nobody@example.com" for m in inbox[0].messages)


async def test_reset_requests_are_limited_per_address_whether_or_not_it_exists(
    inbox: tuple[Inbox, int],
) -> None:
    limited = make_settings(
        smtp_url=f"smtp://127.0.0.1:{inbox[1]}", rate_password_reset_per_email="2/hour"
    )
    async with (
        live_server_of(limited) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        client = GraphQLClient(http)
        user = await sign_up(client)
        for address in (user.email, "nobody@example.com"):
            codes = [(await client.execute(REQUEST_RESET, {"e": address})).errors for _ in range(3)]
            assert [c[0]["extensions"]["code"] if c else None for c in codes] == [
                None,
                None,
                "RATE_LIMITED",
            ]


async def test_an_unverified_user_may_be_kept_from_sending(inbox: tuple[Inbox, int]) -> None:
    strict = make_settings(
        smtp_url=f"smtp://127.0.0.1:{inbox[1]}",
        public_url="https://chat.example.com",
        require_verified_email=True,
        offline_token_delay=0.0,
    )
    async with (
        live_server_of(strict) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        assert code_of(await user.execute(SEND)) == "EMAIL_NOT_VERIFIED"
        token = link_token(await inbox[0].next_for(user.email), "verify-email")
        await user.gql.execute(VERIFY, {"t": token})
        assert (await user.ok(SEND))["sendMessage"]["assistantMessage"]["id"]


async def test_without_smtp_a_developer_finds_mail_in_the_outbox(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    async with (
        live_server_of(make_settings(mail_outbox=outbox)) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        for _ in range(200):
            if files := list(outbox.glob("*.eml")):
                break
            await asyncio.sleep(0.02)
    [file] = files
    mail = email.message_from_bytes(file.read_bytes())
    assert mail["To"] == user.email
    assert "/verify-email?token=" in str(mail)


async def test_a_mail_server_that_is_down_fails_no_operation() -> None:
    down = make_settings(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    async with live_server_of(down) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
        assert (await user.ok(ME))["me"]["email"] == user.email


def test_in_production_without_smtp_mail_is_off() -> None:
    settings = Settings.model_construct(
        env=Environment.PRODUCTION, smtp_url=None, mail_from="x <x@example.com>"
    )
    assert build_mailer(settings).enabled is False


async def test_reset_and_resend_say_mail_is_off_when_it_is() -> None:
    from gql_chat.mail.mailer import Mailer
    from gql_chat.services.email_accounts import EmailAccountService

    service = EmailAccountService(make_settings(), None, None, Mailer(None, "x"), None, None)  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="Mail is off"):
        await service.request_reset("a@example.com", "127.0.0.1", "https://x")


CHANGE = "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }"


async def test_a_new_address_is_confirmed_before_it_replaces_the_old(
    user: SignedIn, inbox: tuple[Inbox, int], live_gql: GraphQLClient, live_server: LiveServer
) -> None:
    await inbox[0].next_for(user.email)  # the first verification
    other = await sign_up(live_gql)
    wrong = await user.execute(CHANGE, {"e": "new@example.com", "p": "not my password"})
    assert code_of(wrong) == "BAD_USER_INPUT"
    taken = await user.execute(CHANGE, {"e": other.email, "p": DEFAULT_PASSWORD})
    assert code_of(taken) == "CONFLICT"
    same = await user.execute(CHANGE, {"e": user.email, "p": DEFAULT_PASSWORD})
    assert code_of(same) == "BAD_USER_INPUT"
    new_address = f"moved-{user.email}"

    assert (await user.ok(CHANGE, {"e": new_address.upper(), "p": DEFAULT_PASSWORD})) == {
        "changeEmail": True
    }

    assert (await user.ok(ME))["me"]["email"] == user.email  # not before it is confirmed
    confirmation = await inbox[0].next_for(new_address)
    assert confirmation["Subject"] == "Confirm your new email address"
    token = link_token(confirmation, "verify-email")
    confirmed = (await live_gql.execute(VERIFY, {"t": token})).ok()["verifyEmail"]
    assert confirmed == {"email": new_address, "emailVerified": True}
    notice = await inbox[0].next_for(user.email)
    assert notice["Subject"] == "Your email address was changed"
    assert (await live_gql.execute(LOGIN, {"e": new_address, "p": DEFAULT_PASSWORD})).ok()
    old = await live_gql.execute(LOGIN, {"e": user.email, "p": DEFAULT_PASSWORD})
    assert code_of(old) == "UNAUTHENTICATED"
    assert code_of(await live_gql.execute(VERIFY, {"t": token})) == "BAD_USER_INPUT"

    # The change is in the audit log, by and about the user, with no address in it.
    admin = await sign_up(live_gql)
    await live_server.app.state.services.accounts.create_admin(admin.email, "")
    log = """query($u: ID) { auditLog(userId: $u, action: EMAIL_CHANGED) { edges { node {
        actorId subjectId details { name } } } } }"""
    entries = (await admin.ok(log, {"u": user.user_id}))["auditLog"]["edges"]
    assert [edge["node"] for edge in entries] == [
        {"actorId": user.user_id, "subjectId": user.user_id, "details": []}
    ]
