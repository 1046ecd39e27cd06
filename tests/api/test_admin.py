"""Administration: who may list and disable users, and what disabling does."""

from __future__ import annotations

from strawberry.types.base import get_object_definition
from strawberry.utils.str_converters import to_camel_case

from gql_chat.api.permissions import IsAdmin
from gql_chat.api.schema import Mutation, Query
from tests.support import GraphQLClient, SignedIn, sign_up

USERS = """query($first: Int, $after: String, $search: String) {
    users(first: $first, after: $after, search: $search) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id email disabled } } } }"""
ME = "query { me { role disabled budget { amount } modelAccess { patterns custom } } }"
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


ADMIN_OPERATIONS = {
    "users": "query { users { totalCount } }",
    "feedback": "query { feedback { totalCount } }",
    "auditLog": "query { auditLog { totalCount } }",
    "adminUsage": """query { adminUsage(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z",
        groupBy: USER) { __typename } }""",
    "adminStats": "query { adminStats { __typename } }",
    "setUserBudget": "mutation($u: ID!) { setUserBudget(userId: $u, amount: 1) { id } }",
    "setUserDisabled": "mutation($u: ID!) { setUserDisabled(userId: $u, disabled: true) { id } }",
    "setUserModelAccess": "mutation($u: ID!) { setUserModelAccess(userId: $u, models: []) { id } }",
    "setUserRole": "mutation($u: ID!) { setUserRole(userId: $u, role: ADMIN) { id } }",
}


def admin_fields() -> set[str]:
    """Every query and mutation field the schema guards with `IsAdmin`."""
    return {
        to_camel_case(field.python_name)
        for root in (Query, Mutation)
        for field in get_object_definition(root, strict=True).fields
        if IsAdmin in field.permission_classes
    }


def test_every_admin_operation_is_in_the_forbidden_test() -> None:
    assert admin_fields() == set(ADMIN_OPERATIONS)


async def test_each_admin_operation_is_forbidden_to_users_and_changes_nothing(
    alice: SignedIn, bob: SignedIn
) -> None:
    before = await bob.ok(ME)
    for name, operation in ADMIN_OPERATIONS.items():
        result = await alice.execute(operation, {"u": bob.user_id} if "$u" in operation else None)
        assert result.error_codes == ["FORBIDDEN"], name
        assert result.data is None, name
    assert await bob.ok(ME) == before


ROLE = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id role } }"


async def test_admins_promote_and_demote_others_but_not_themselves(
    admin: SignedIn, alice: SignedIn
) -> None:
    promoted = await admin.ok(ROLE, {"u": alice.user_id, "r": "ADMIN"})
    assert promoted["setUserRole"] == {"id": alice.user_id, "role": "ADMIN"}
    assert (await alice.ok(USERS))["users"]["totalCount"] == 2  # at once, same token
    own = await admin.execute(ROLE, {"u": admin.user_id, "r": "USER"})
    assert own.error_codes == ["BAD_USER_INPUT"]
    assert own.errors[0]["extensions"]["field"] == "userId"
    missing = await admin.execute(ROLE, {"u": "0" * 24, "r": "USER"})
    assert missing.error_codes == ["NOT_FOUND"]
    # The new admin demotes the one who promoted them, who is then a user like any other.
    await alice.ok(ROLE, {"u": admin.user_id, "r": "USER"})
    assert (await admin.execute(USERS)).error_codes == ["FORBIDDEN"]
    log = """query { auditLog(action: ROLE_CHANGED) { edges { node {
        actorId subjectId details { name value } } } } }"""
    entries = [edge["node"] for edge in (await alice.ok(log))["auditLog"]["edges"]]
    assert entries[:2] == [
        {
            "actorId": alice.user_id,
            "subjectId": admin.user_id,
            "details": [{"name": "role", "value": "USER"}],
        },
        {
            "actorId": admin.user_id,
            "subjectId": alice.user_id,
            "details": [{"name": "role", "value": "ADMIN"}],
        },
    ]
