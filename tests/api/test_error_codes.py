"""Every error a client can get from `/graphql` has `extensions.code`: parse, validation and
variable errors (Apollo Server's codes), and requests that are not GraphQL over HTTP at all
(answered as a GraphQL response, not as plain text)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.api.test_branching import wait_for_subscribers
from tests.conftest import TEST_JWT_SECRET, LiveServer
from tests.support import GraphQLClient, SignedIn, send_message, sign_up, ws_client

CONVERSATIONS = "query($n: Int!) { conversations(first: $n) { totalCount } }"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ me { id "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": CONVERSATIONS, "variables": {"n": "ten"}}, "BAD_USER_INPUT"),
        ({"query": CONVERSATIONS}, "BAD_USER_INPUT"),
        ({"query": CONVERSATIONS, "variables": {"n": 2**40}}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_have_codes(
    http: httpx.AsyncClient, body: dict[str, object], code: str
) -> None:
    response = await http.post("/graphql", json=body)
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == [code] * len(errors)


@pytest.mark.parametrize(
    ("content", "accept"),
    [
        (b'{"query": null}', "application/json"),
        (b'{"variables": {}}', "application/graphql-response+json"),
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
    ],
)
async def test_malformed_requests_get_a_graphql_error_with_a_code(
    http: httpx.AsyncClient, content: bytes, accept: str
) -> None:
    response = await http.post(
        "/graphql", content=content, headers={"Content-Type": "application/json", "Accept": accept}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(accept)
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert body["errors"][0]["message"]


async def test_a_mutation_over_get_is_405_with_a_code(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": "mutation { logoutAll }"})
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_paging_both_ways_at_once_is_refused(alice: SignedIn) -> None:
    sent = await send_message(alice, "hello")
    result = await alice.execute(
        """query($id: ID!) { conversation(id: $id) {
            messages(first: 1, last: 1) { edges { node { id } } } } }""",
        {"id": sent["conversation"]["id"]},
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "last"


def token_for(user: SignedIn, *, seconds_left: int) -> str:
    """An access token of ours (the suite's secret), expiring `seconds_left` from now."""
    now = int(time.time())
    claims = {
        "sub": user.user_id,
        "iat": now - 3600,
        "exp": now + seconds_left,
        "jti": "test",
        "iss": "gql_chat",
        "aud": "gql_chat",
        "typ": "access",
    }
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


async def test_an_expired_token_says_so_and_a_bad_one_says_invalid(
    alice: SignedIn, gql: GraphQLClient
) -> None:
    fresh = await gql.execute("{ me { id } }", token=token_for(alice, seconds_left=60))
    assert fresh.data == {"me": {"id": alice.user_id}}
    expired = await gql.execute("{ me { id } }", token=token_for(alice, seconds_left=-5))
    assert [e["extensions"] for e in expired.errors] == [
        {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}
    ]
    forged = await gql.execute("{ me { id } }", token=alice.token[:-4] + "AAAA")
    assert [e["extensions"] for e in forged.errors] == [
        {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}
    ]
    malformed = await gql.execute("{ me { id } }", headers={"Authorization": "Basic abc"})
    assert malformed.errors[0]["extensions"]["reason"] == "TOKEN_INVALID"


async def test_a_token_accepted_before_is_refused_once_it_expires(
    alice: SignedIn, gql: GraphQLClient
) -> None:
    """Verified tokens are remembered (PyJWT's checks cost 150 µs): the memory must not
    outlive the token's expiry, nor let a token that changed by one character through."""
    token = token_for(alice, seconds_left=2)
    for _ in range(2):  # the second use is answered from memory
        accepted = await gql.execute("{ me { id } }", token=token)
        assert accepted.data == {"me": {"id": alice.user_id}}
    tampered = await gql.execute(
        "{ me { id } }", token=token[:-1] + ("A" if token[-1] != "A" else "B")
    )
    assert tampered.error_codes == ["UNAUTHENTICATED"]
    await asyncio.sleep(
        max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05
    )
    expired = await gql.execute("{ me { id } }", token=token)
    assert [e["extensions"] for e in expired.errors] == [
        {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}
    ]


async def test_every_invalid_field_is_reported_at_once(gql: GraphQLClient, alice: SignedIn) -> None:
    result = await gql.execute(
        """mutation($input: RegisterInput!) { register(input: $input) { accessToken } }""",
        {"input": {"email": "not-an-email", "password": "x", "displayName": " "}},
    )
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in result.errors] == [
        ("BAD_USER_INPUT", "email"),
        ("BAD_USER_INPUT", "password"),
        ("BAD_USER_INPUT", "displayName"),
    ]
    assert all(e["path"] == ["register"] for e in result.errors)
    one = await gql.execute(
        """mutation($input: RegisterInput!) { register(input: $input) { accessToken } }""",
        {"input": {"email": "fine@example.com", "password": "x"}},
    )
    assert [e["extensions"]["field"] for e in one.errors] == ["password"]
    preset = await alice.execute(
        """mutation { createLlmConfig(input: {name: "", model: "m", temperature: 5, topP: 0,
            maxTokens: 0}) { id } }"""
    )
    assert [e["extensions"]["field"] for e in preset.errors] == [
        "name",
        "temperature",
        "topP",
        "maxTokens",
    ]
    assert (await alice.ok("{ llmConfigs { id } }"))["llmConfigs"] == []


async def test_a_socket_with_an_expired_token_is_told_so(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
    reasons = []
    for token in (token_for(user, seconds_left=-5), user.token[:-4] + "AAAA"):
        async with ws_client(live_server.ws_url) as ws:
            await ws.send(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.receive(), timeout=5)
            assert closed.value.rcvd is not None
            reasons.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    assert reasons == [(4403, "Token expired"), (4403, "Forbidden")]


@pytest.mark.parametrize(
    ("document", "operation_name", "code"),
    [
        ("subscription { userEvents { kind ", None, "GRAPHQL_PARSE_FAILED"),
        (
            "subscription { userEvents { kind } } subscription { userEvents { at } }",
            None,
            "OPERATION_RESOLUTION_FAILURE",
        ),
        # Strawberry's own refusals, coded as over HTTP (they were masked as
        # INTERNAL_SERVER_ERROR, with a traceback in the log).
        ("subscription A { userEvents { kind } }", "B", "BAD_REQUEST"),
        ("", None, "BAD_REQUEST"),
        ("subscription { userEvents { kind } }" + " " * 70_000, None, "GRAPHQL_PARSE_FAILED"),
        ("subscription { nope }", None, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_a_subscribe_that_is_refused_before_it_runs_gets_an_error_with_its_code(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    document: str,
    operation_name: str | None,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over graphql-transport-ws: the protocol's `error` message (not `complete` alone, and
    nothing logged as a failure), and the socket's other operations go on. The operation log
    has its line with the code, as over HTTP."""
    user = await sign_up(live_gql)
    caplog.set_level(logging.INFO, "gql_chat.graphql")
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        payload = {"query": document, "operationName": operation_name}
        await ws.send({"id": "refused", "type": "subscribe", "payload": payload})
        message = await asyncio.wait_for(ws.receive(), timeout=5)
        assert (message["id"], message["type"]) == ("refused", "error"), message
        assert message["payload"][0]["message"]
        assert [e["extensions"]["code"] for e in message["payload"]] == [code]
        working = await ws.subscribe("subscription { userEvents { kind } }")
        await wait_for_subscribers(live_server, user, 1)
        await send_message(user, "still here")
        event = await asyncio.wait_for(ws.receive(), timeout=5)
        assert (event["id"], event["type"]) == (working, "next")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    logged = [
        r for r in caplog.records if r.name == "gql_chat.graphql" and vars(r)["outcome"] == "error"
    ]
    assert [(vars(r)["error_codes"], vars(r)["user_id"]) for r in logged] == [
        ([code], user.user_id)
    ]
