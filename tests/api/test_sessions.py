"""`sessions` and `revokeSession` through the public API: a user sees where they are signed in
(device, address, when) and which sign-in is the caller's, and can end any of them."""

from __future__ import annotations

from typing import Any

from tests.conftest import LiveServer
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    close_code,
    sign_up,
    signed_in_socket,
)

SESSIONS = "query { sessions { id createdAt lastUsedAt userAgent clientIp current } }"
REVOKE = "mutation($id: ID!) { revokeSession(id: $id) }"
LOGIN = """mutation($email: String!, $password: String!) {
    login(input: {email: $email, password: $password}) { accessToken refreshToken } }"""
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"
PHONE = "Phone/2.0 (the second device)"


async def sessions(gql: GraphQLClient, token: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await gql.execute(SESSIONS, token=token)).ok()["sessions"]
    return listed


async def second_login(user: SignedIn, user_agent: str = PHONE) -> dict[str, Any]:
    result = await user.gql.execute(
        LOGIN,
        {"email": user.email, "password": DEFAULT_PASSWORD},
        headers={"User-Agent": user_agent},
    )
    login: dict[str, Any] = result.ok()["login"]
    return login


async def test_a_user_sees_each_sign_in_and_which_is_theirs(live_gql: GraphQLClient) -> None:
    user = await sign_up(live_gql)
    phone = await second_login(user)

    seen_from_phone = await sessions(live_gql, phone["accessToken"])
    seen_from_first = await sessions(live_gql, user.token)

    assert len(seen_from_phone) == 2
    assert seen_from_phone[0]["userAgent"] == PHONE  # the latest first
    assert [s["current"] for s in seen_from_phone] == [True, False]
    assert [s["current"] for s in seen_from_first] == [False, True]
    assert {s["clientIp"] for s in seen_from_phone} == {"127.0.0.1"}
    assert seen_from_phone[1]["userAgent"].startswith("python-httpx/")
    other = await sign_up(live_gql)
    assert [s["current"] for s in await sessions(live_gql, other.token)] == [True]


async def test_refreshing_moves_last_used_and_keeps_the_session(live_gql: GraphQLClient) -> None:
    user = await sign_up(live_gql)
    [before] = await sessions(live_gql, user.token)
    refreshed = (await live_gql.execute(REFRESH, {"t": user.refresh_token})).ok()["refreshToken"]

    [after] = await sessions(live_gql, refreshed["accessToken"])

    assert after["id"] == before["id"]
    assert after["createdAt"] == before["createdAt"]
    assert after["lastUsedAt"] >= before["lastUsedAt"]
    assert after["current"]


async def test_revoking_a_session_ends_that_sign_in_only(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    user = await sign_up(live_gql)
    phone = await second_login(user)
    phone_session = next(s for s in await sessions(live_gql, phone["accessToken"]) if s["current"])
    other = await sign_up(live_gql)
    refused = await live_gql.execute(REVOKE, {"id": phone_session["id"]}, token=other.token)
    assert refused.errors[0]["extensions"]["code"] == "NOT_FOUND"

    async with signed_in_socket(live_server.ws_url, phone["accessToken"]) as phone_socket:
        revoked = await live_gql.execute(REVOKE, {"id": phone_session["id"]}, token=user.token)
        assert revoked.ok() == {"revokeSession": True}
        assert await close_code(phone_socket, within=5) == 4403

    ended = await live_gql.execute(REFRESH, {"t": phone["refreshToken"]})
    assert ended.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert [s["current"] for s in await sessions(live_gql, user.token)] == [True]
    again = await live_gql.execute(REVOKE, {"id": phone_session["id"]}, token=user.token)
    assert again.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_logout_and_a_password_change_end_sessions(live_gql: GraphQLClient) -> None:
    user = await sign_up(live_gql)
    phone = await second_login(user)
    await live_gql.execute(
        "mutation($t: String!) { logout(refreshToken: $t) }", {"t": phone["refreshToken"]}
    )
    assert len(await sessions(live_gql, user.token)) == 1
    third = await second_login(user, "Tablet")
    assert len(await sessions(live_gql, user.token)) == 2
    await live_gql.execute(
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
        {"c": DEFAULT_PASSWORD, "n": "another long password 123"},
        token=third["accessToken"],
    )
    assert [s["userAgent"] for s in await sessions(live_gql, third["accessToken"])] == ["Tablet"]


async def test_a_user_agent_is_shown_cleaned_and_cut(live_gql: GraphQLClient) -> None:
    user = await sign_up(live_gql)
    login = await second_login(user, "Evil\tAgent " + "x" * 1000)
    [latest, _] = await sessions(live_gql, login["accessToken"])
    assert latest["userAgent"].startswith("EvilAgent x")
    assert len(latest["userAgent"]) == 300
