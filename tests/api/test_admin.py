"""Administration: who may list and disable users, and what disabling does."""

from __future__ import annotations

from tests.support import GraphQLClient, SignedIn, sign_up

USERS = """query($first: Int, $after: String, $search: String) {
    users(first: $first, after: $after, search: $search) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id email disabled } } } }"""
DISABLE = """mutation($id: ID!, $d: Boolean!) { setUserDisabled(userId: $id, disabled: $d) {
    id disabled } }"""


async def test_non_admins_are_forbidden(alice: SignedIn, bob: SignedIn, gql: GraphQLClient) -> None:
    assert (await alice.execute(USERS)).error_codes == ["FORBIDDEN"]
    result = await alice.execute(DISABLE, {"id": bob.user_id, "d": True})
    assert result.error_codes == ["FORBIDDEN"]
    assert (await gql.execute(USERS)).error_codes == ["UNAUTHENTICATED"]
    assert (await gql.execute(DISABLE, {"id": bob.user_id, "d": True})).error_codes == [
        "UNAUTHENTICATED"
    ]
    assert (await bob.ok("{ me { disabled } }")) == {"me": {"disabled": False}}


async def test_users_are_listed_by_creation_and_searchable(
    admin: SignedIn, gql: GraphQLClient
) -> None:
    created = [await sign_up(gql, email=f"member{i}@Team.example") for i in range(5)]
    page = (await admin.ok(USERS, {"first": 3}))["users"]
    assert page["totalCount"] == 6
    assert [e["node"]["id"] for e in page["edges"]] == [admin.user_id] + [
        u.user_id for u in created[:2]
    ]
    rest = (await admin.ok(USERS, {"first": 3, "after": page["pageInfo"]["endCursor"]}))["users"]
    assert [e["node"]["id"] for e in rest["edges"]] == [u.user_id for u in created[2:]]
    assert rest["pageInfo"]["hasNextPage"] is False
    found = (await admin.ok(USERS, {"search": "TEAM.EX"}))["users"]
    assert found["totalCount"] == 5
    assert (await admin.ok(USERS, {"search": ".*"}))["users"]["totalCount"] == 0


async def test_disabling_revokes_access_and_can_be_undone(
    admin: SignedIn, alice: SignedIn, gql: GraphQLClient
) -> None:
    disabled = await admin.ok(DISABLE, {"id": alice.user_id, "d": True})
    assert disabled == {"setUserDisabled": {"id": alice.user_id, "disabled": True}}
    assert (await alice.execute("{ me { id } }")).error_codes == ["UNAUTHENTICATED"]
    refresh = await gql.execute(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        {"t": alice.refresh_token},
    )
    assert refresh.error_codes == ["UNAUTHENTICATED"]
    login = 'mutation($e: String!) { login(input: {email: $e, password: "correct horse battery"}) { accessToken } }'
    assert (await gql.execute(login, {"e": alice.email})).error_codes == ["UNAUTHENTICATED"]

    await admin.ok(DISABLE, {"id": alice.user_id, "d": False})
    assert (await gql.execute(login, {"e": alice.email})).ok()


async def test_admins_cannot_disable_themselves_or_unknown_users(admin: SignedIn) -> None:
    result = await admin.execute(DISABLE, {"id": admin.user_id, "d": True})
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "userId"}
    for unknown in ("0" * 24, "not-an-id"):
        assert (await admin.execute(DISABLE, {"id": unknown, "d": True})).error_codes == [
            "NOT_FOUND"
        ]
