"""An open websocket holds no more than its sign-in: once the token expires, the user is disabled
or deleted, or that sign-in is revoked, the socket closes with 4403 and serves nothing more;
the user's other sign-ins and other users' sockets are left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.services.tokens import TokenType
from tests.conftest import LiveServer, live_server_of
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    TransportWsClient,
    close_code,
    sign_up,
    signed_in_socket,
)

USER_EVENTS = "subscription { userEvents { kind } }"
ME = "{ me { id email disabled } }"
CREATE_FOLDER = 'mutation { createFolder(input: {name: "late"}) { id } }'
LOGIN = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
    accessToken refreshToken } }"""
DISABLE = "mutation($id: ID!, $d: Boolean!) { setUserDisabled(userId: $id, disabled: $d) { id } }"


async def still_open(ws: TransportWsClient) -> None:
    """The socket still answers an operation as its user."""
    operation = await ws.subscribe(ME)
    message = await asyncio.wait_for(ws.receive(), timeout=3)
    while message["type"] == "complete" and message["id"] != operation:  # an earlier one's
        message = await asyncio.wait_for(ws.receive(), timeout=3)
    assert message["type"] == "next", message
    assert message["id"] == operation
    assert message["payload"]["data"]["me"]["disabled"] is False


async def login(gql: GraphQLClient, email: str) -> SignedIn:
    tokens = (await gql.execute(LOGIN, {"e": email, "p": DEFAULT_PASSWORD})).ok()["login"]
    user_id = (await gql.execute(ME, token=tokens["accessToken"])).ok()["me"]["id"]
    return SignedIn(gql, tokens["accessToken"], tokens["refreshToken"], user_id, email)


async def make_admin(server: LiveServer, gql: GraphQLClient) -> SignedIn:
    user = await sign_up(gql)
    await server.app.state.services.accounts.create_admin(user.email, "")
    return user


async def folder_count(server: LiveServer, user_id: str) -> int:
    database = server.app.state.services.database
    return len(await database.folders.list_all(ObjectId(user_id)))


async def test_disabling_a_user_closes_their_open_sockets_and_no_one_elses(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    admin = await make_admin(live_server, live_gql)
    alice = await sign_up(live_gql)
    bob = await sign_up(live_gql)
    async with (
        signed_in_socket(live_server.ws_url, alice.token) as alice_events,
        signed_in_socket(live_server.ws_url, alice.token) as alice_idle,
        signed_in_socket(live_server.ws_url, bob.token) as bob_socket,
    ):
        await alice_events.subscribe(USER_EVENTS)
        await asyncio.sleep(0.1)  # the subscription is running

        await admin.ok(DISABLE, {"id": alice.user_id, "d": True})

        assert await close_code(alice_events) == 4403
        assert await close_code(alice_idle) == 4403
        await still_open(bob_socket)


async def test_an_operation_on_a_socket_of_a_disabled_user_is_refused_and_writes_nothing(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """Even when nothing announced the change (it was made straight in the database), the
    socket's next operation re-reads the user."""
    alice = await sign_up(live_gql)
    async with signed_in_socket(live_server.ws_url, alice.token) as ws:
        await still_open(ws)
        database = live_server.app.state.services.database
        await database.users.update(ObjectId(alice.user_id), disabled=True)

        operation = await ws.subscribe(CREATE_FOLDER)
        first = await asyncio.wait_for(ws.receive(), timeout=3)
        if first["type"] == "next":  # the error may beat the close, or not
            assert first["id"] == operation
            assert first["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert await close_code(ws) == 4403

    assert await folder_count(live_server, alice.user_id) == 0


async def test_deleting_an_account_closes_its_sockets_before_they_write_again(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    alice = await sign_up(live_gql)
    async with signed_in_socket(live_server.ws_url, alice.token) as ws:
        await still_open(ws)
        await alice.ok(
            "mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD}
        )
        assert await close_code(ws) == 4403

    assert await folder_count(live_server, alice.user_id) == 0


async def test_logout_all_closes_every_socket_of_the_user(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    alice = await sign_up(live_gql)
    laptop = await login(live_gql, alice.email)
    async with (
        signed_in_socket(live_server.ws_url, alice.token) as phone_socket,
        signed_in_socket(live_server.ws_url, laptop.token) as laptop_socket,
    ):
        await alice.ok("mutation { logoutAll }")
        assert await close_code(phone_socket) == 4403
        assert await close_code(laptop_socket) == 4403


@pytest.mark.parametrize("how", ["logout", "changePassword"])
async def test_ending_one_sign_in_closes_only_its_sockets(
    live_server: LiveServer, live_gql: GraphQLClient, how: str
) -> None:
    """`logout` ends the laptop's sign-in; `changePassword` on the phone ends every other one.
    Either way the phone's socket stays and the laptop's closes."""
    phone = await sign_up(live_gql)
    laptop = await login(live_gql, phone.email)
    async with (
        signed_in_socket(live_server.ws_url, phone.token) as phone_socket,
        signed_in_socket(live_server.ws_url, laptop.token) as laptop_socket,
    ):
        if how == "logout":
            await phone.ok(
                "mutation($t: String!) { logout(refreshToken: $t) }", {"t": laptop.refresh_token}
            )
        else:
            await phone.ok(
                "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, "
                "newPassword: $n) }",
                {"c": DEFAULT_PASSWORD, "n": "another correct horse"},
            )
        assert await close_code(laptop_socket) == 4403
        await still_open(phone_socket)


@pytest.fixture
async def short_token_server(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[LiveServer]:
    async with live_server_of(settings_factory(access_token_ttl=timedelta(seconds=2))) as server:
        yield server


async def test_a_socket_closes_when_its_token_expires(short_token_server: LiveServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=short_token_server.http_url) as http:
        alice = await sign_up(GraphQLClient(http))
        async with signed_in_socket(short_token_server.ws_url, alice.token) as ws:
            await ws.subscribe(USER_EVENTS)
            await still_open(ws)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await close_code(ws, within=6) == 4403
            assert loop.time() - started < 4  # at the token's expiry (2 s), not later


async def test_a_refreshed_token_signs_a_new_socket_in(short_token_server: LiveServer) -> None:
    """What a client does on 4403: reconnect with a fresh token, and carry on."""
    import httpx

    async with httpx.AsyncClient(base_url=short_token_server.http_url) as http:
        gql = GraphQLClient(http)
        alice = await sign_up(gql)
        async with signed_in_socket(short_token_server.ws_url, alice.token) as ws:
            assert await close_code(ws, within=6) == 4403
        refreshed: dict[str, Any] = (
            await gql.execute(
                "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
                {"t": alice.refresh_token},
            )
        ).ok()["refreshToken"]
        async with signed_in_socket(short_token_server.ws_url, refreshed["accessToken"]) as ws:
            await still_open(ws)


async def test_a_legacy_protocol_socket_closes_when_its_user_is_disabled(
    legacy_server: LiveServer,
) -> None:
    import json

    import httpx
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with httpx.AsyncClient(base_url=legacy_server.http_url) as http:
        gql = GraphQLClient(http)
        admin = await make_admin(legacy_server, gql)
        alice = await sign_up(gql)
        legacy = [Subprotocol("graphql-ws")]
        async with connect(f"{legacy_server.ws_url}/graphql", subprotocols=legacy) as ws:
            init = {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {alice.token}"},
            }
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            start = {"id": "1", "type": "start", "payload": {"query": USER_EVENTS}}
            await ws.send(json.dumps(start))
            await asyncio.sleep(0.1)

            await admin.ok(DISABLE, {"id": alice.user_id, "d": True})

            await asyncio.wait_for(ws.wait_closed(), timeout=5)
            assert ws.close_code == 4403


async def test_an_operation_on_a_socket_whose_login_was_revoked_is_refused_and_writes_nothing(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    """Revoked straight in the database (no news of it reached the socket): the socket's next
    operation still sees it. A send is refused before it stores anything or calls the model."""
    phone = await sign_up(live_gql)
    laptop = await login(live_gql, phone.email)
    async with signed_in_socket(live_server.ws_url, laptop.token) as ws:
        await still_open(ws)
        database = live_server.app.state.services.database
        claims = live_server.app.state.services.accounts._tokens.decode(
            laptop.refresh_token, TokenType.REFRESH
        )
        assert await database.refresh_tokens.revoke_family(
            ObjectId(phone.user_id), claims.family_id
        )

        await ws.subscribe(
            'mutation { sendMessage(input: {content: "late"}) { conversation { id } } }'
        )
        assert await close_code(ws) == 4403

    conversations = await phone.ok("{ conversations { edges { node { id } } } }")
    assert conversations["conversations"]["edges"] == []


async def test_a_storm_of_sign_in_news_costs_each_socket_at_most_two_checks(
    live_server: LiveServer, live_gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await sign_up(live_gql)
    accounts = live_server.app.state.services.accounts
    checks = 0
    real_recheck = accounts.recheck

    async def counted(sign_in: Any) -> Any:
        nonlocal checks
        checks += 1
        await asyncio.sleep(0.05)  # a slow store: news keeps arriving meanwhile
        return await real_recheck(sign_in)

    async with signed_in_socket(live_server.ws_url, alice.token) as ws:
        await still_open(ws)
        monkeypatch.setattr(accounts, "recheck", counted)
        for _ in range(200):
            live_server.app.state.services.sign_ins.ended(ObjectId(alice.user_id))
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)
        assert checks == 2
        monkeypatch.undo()
        await still_open(ws)


async def test_a_legacy_protocol_start_that_does_not_parse_gets_an_error_with_its_code(
    legacy_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    import httpx
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with httpx.AsyncClient(base_url=legacy_server.http_url) as http:
        alice = await sign_up(GraphQLClient(http))
    legacy = [Subprotocol("graphql-ws")]
    async with connect(f"{legacy_server.ws_url}/graphql", subprotocols=legacy) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {alice.token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = {"id": "1", "type": "start", "payload": {"query": "subscription { userEvents {"}}
        await ws.send(json.dumps(start))
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] == "ka":
            pass
    assert (message["type"], message["id"]) == ("error", "1")
    assert message["payload"]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
