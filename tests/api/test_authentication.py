"""Every way a bearer token can be wrong answers UNAUTHENTICATED, over HTTP and websockets."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import TEST_JWT_SECRET, LiveServer
from tests.support import GraphQLClient, ws_client

ME = "{ me { id } }"


def forge(claims: dict[str, Any], secret: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def valid_claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "jti": "j",
        "iss": "gql_chat",
        "aud": "gql_chat",
        "typ": "access",
    }
    claims.update(overrides)
    return claims


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_no_token_is_unauthenticated(gql: GraphQLClient) -> None:
    result = await gql.execute(ME)
    assert result.error_codes == ["UNAUTHENTICATED"]
    assert result.data is None


async def test_every_bad_token_is_unauthenticated(gql: GraphQLClient) -> None:
    registered = await gql.register()
    user_id = registered["user"]["id"]
    good = forge(valid_claims(user_id))
    assert (await gql.execute(ME, token=good)).ok()["me"]["id"] == user_id

    header, _payload, signature = good.split(".")
    tampered_claims = valid_claims("0" * 24)
    tampered_payload = (
        base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
    )
    bad_tokens = {
        "garbage": "not.a.token",
        "wrong signature": forge(
            valid_claims(user_id), secret="another-secret-of-sufficient-length-123456"
        ),
        "alg none": unsigned(valid_claims(user_id)),
        "expired": forge(
            valid_claims(user_id, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
        ),
        "refresh as access": registered["refreshToken"],
        "wrong audience": forge(valid_claims(user_id, aud="someone-else")),
        "wrong issuer": forge(valid_claims(user_id, iss="someone-else")),
        "missing typ": forge({k: v for k, v in valid_claims(user_id).items() if k != "typ"}),
        "non-objectid subject": forge(valid_claims("admin")),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "unknown user": forge(valid_claims("0" * 24)),
    }
    for name, token in bad_tokens.items():
        result = await gql.execute(ME, token=token)
        assert result.error_codes == ["UNAUTHENTICATED"], name

    not_bearer = await gql.execute(ME, headers={"Authorization": f"Basic {good}"})
    assert not_bearer.error_codes == ["UNAUTHENTICATED"]


async def test_access_token_is_not_a_refresh_token(gql: GraphQLClient) -> None:
    registered = await gql.register()
    result = await gql.execute(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        {"t": registered["accessToken"]},
    )
    assert result.error_codes == ["UNAUTHENTICATED"]


async def test_disabled_user_is_refused_at_once(gql: GraphQLClient, app: Any) -> None:
    registered = await gql.register()
    from bson import ObjectId

    await app.state.services.database.users.update(
        ObjectId(registered["user"]["id"]), disabled=True
    )
    assert (await gql.execute(ME, token=registered["accessToken"])).error_codes == [
        "UNAUTHENTICATED"
    ]
    refresh = await gql.execute(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        {"t": registered["refreshToken"]},
    )
    assert refresh.error_codes == ["UNAUTHENTICATED"]


async def test_internal_errors_are_masked(
    gql: GraphQLClient, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    registered = await gql.register()

    async def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("driver says: secret connection string mongodb://user:pw@host")

    app.state.services.accounts.update_profile = explode
    result = await gql.execute(
        'mutation { updateProfile(input: {displayName: "x"}) { id } }',
        token=registered["accessToken"],
    )
    assert result.error_codes == ["INTERNAL_SERVER_ERROR"]
    assert "secret" not in json.dumps(result.body)
    assert result.errors[0]["message"] == "Internal server error."
    assert any(record.exc_info for record in caplog.records)


async def test_websocket_accepts_a_valid_token(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = (await live_gql.register())["accessToken"]
    async with ws_client(live_server.ws_url) as ws:
        ack = await ws.init({"Authorization": f"Bearer {token}"})
        assert ack["type"] == "connection_ack"


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Token abc"},
        {"Authorization": 12},
    ],
)
async def test_websocket_rejects_a_bad_token_with_4403(
    live_server: LiveServer, payload: dict[str, Any]
) -> None:
    async with ws_client(live_server.ws_url) as ws:
        await ws.send({"type": "connection_init", "payload": payload})
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_websocket_rejects_a_disabled_user(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    registered = await live_gql.register()
    from bson import ObjectId

    database = live_server.app.state.services.database
    await database.users.update(ObjectId(registered["user"]["id"]), disabled=True)
    async with ws_client(live_server.ws_url) as ws:
        await ws.send(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {registered['accessToken']}"},
            }
        )
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_legacy_graphql_ws_protocol_is_off(live_server: LiveServer) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake
    from websockets.typing import Subprotocol

    async def speak_legacy_protocol() -> None:
        legacy = [Subprotocol("graphql-ws")]
        async with connect(f"{live_server.ws_url}/graphql", subprotocols=legacy) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.recv()

    with pytest.raises((InvalidHandshake, ConnectionClosed)):
        await speak_legacy_protocol()
