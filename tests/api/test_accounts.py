"""The account lifecycle through GraphQL over HTTP."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.services import accounts as accounts_service
from tests.conftest import serve
from tests.support import (
    CREATE_CONVERSATION,
    CREATE_FOLDER,
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    sign_up,
    unique_email,
)

ME = "{ me { id email displayName role disabled createdAt } }"
REFRESH = """mutation($t: String!) { refreshToken(refreshToken: $t) {
    accessToken refreshToken user { id } } }"""
LOGIN = """mutation($input: LoginInput!) { login(input: $input) {
    accessToken refreshToken user { id email } } }"""


async def login(gql: GraphQLClient, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    payload: dict[str, str] = (
        await gql.execute(LOGIN, {"input": {"email": email, "password": password}})
    ).ok()["login"]
    return payload


async def test_register_returns_tokens_and_normalised_user(gql: GraphQLClient) -> None:
    payload = await gql.register(email="  Alice.Smith@Example.COM ")
    user = payload["user"]
    assert user["email"] == "alice.smith@example.com"
    assert user["displayName"] == "alice.smith"
    assert user["role"] == "USER"
    assert user["disabled"] is False
    assert payload["accessTokenExpiresAt"] < payload["refreshTokenExpiresAt"]
    me = (await gql.execute(ME, token=payload["accessToken"])).ok()["me"]
    assert me == user


async def test_register_validates_each_field(gql: GraphQLClient) -> None:
    query = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }"
    cases = [
        ({"email": "not-an-email", "password": DEFAULT_PASSWORD}, "email"),
        ({"email": unique_email(), "password": "short"}, "password"),
        ({"email": unique_email(), "password": "x" * 1025}, "password"),
        (
            {"email": unique_email(), "password": DEFAULT_PASSWORD, "displayName": "  "},
            "displayName",
        ),
        (
            {"email": unique_email(), "password": DEFAULT_PASSWORD, "displayName": "n" * 101},
            "displayName",
        ),
    ]
    for variables, field in cases:
        result = await gql.execute(query, {"input": variables})
        assert result.error_codes == ["BAD_USER_INPUT"], variables
        assert result.errors[0]["extensions"]["field"] == field
        assert result.data is None


async def test_taken_email_is_a_conflict_whatever_its_case(gql: GraphQLClient) -> None:
    await gql.register(email="taken@example.com")
    query = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }"
    result = await gql.execute(
        query, {"input": {"email": "TAKEN@example.com", "password": DEFAULT_PASSWORD}}
    )
    assert result.error_codes == ["CONFLICT"]


async def test_login_failures_are_indistinguishable(gql: GraphQLClient) -> None:
    email = unique_email()
    await gql.register(email=email)
    wrong_password = await gql.execute(
        LOGIN, {"input": {"email": email, "password": "wrong password"}}
    )
    unknown_email = await gql.execute(
        LOGIN, {"input": {"email": unique_email(), "password": "wrong password"}}
    )
    malformed_email = await gql.execute(LOGIN, {"input": {"email": "nope", "password": "x"}})
    for result in (wrong_password, unknown_email, malformed_email):
        assert result.error_codes == ["UNAUTHENTICATED"]
    assert wrong_password.errors[0]["message"] == unknown_email.errors[0]["message"]
    assert (await login(gql, email.upper()))["user"]["email"] == email  # type: ignore[index]


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(gql: GraphQLClient) -> None:
    registered = await gql.register()
    first = registered["refreshToken"]
    second = (await gql.execute(REFRESH, {"t": first})).ok()["refreshToken"]["refreshToken"]
    assert second != first
    third = (await gql.execute(REFRESH, {"t": second})).ok()["refreshToken"]["refreshToken"]

    # Replaying a retired token is reuse: it fails and kills every descendant, even the live one.
    assert (await gql.execute(REFRESH, {"t": first})).error_codes == ["UNAUTHENTICATED"]
    assert (await gql.execute(REFRESH, {"t": third})).error_codes == ["UNAUTHENTICATED"]


async def test_reuse_revokes_only_that_login(gql: GraphQLClient) -> None:
    email = unique_email()
    registered = await gql.register(email=email)
    other_login = await login(gql, email)
    rotated = (await gql.execute(REFRESH, {"t": registered["refreshToken"]})).ok()["refreshToken"][
        "refreshToken"
    ]
    assert rotated
    await gql.execute(REFRESH, {"t": registered["refreshToken"]})  # reuse
    assert (await gql.execute(REFRESH, {"t": other_login["refreshToken"]})).ok()


async def test_concurrent_use_of_one_refresh_token_yields_one_winner(gql: GraphQLClient) -> None:
    token = (await gql.register())["refreshToken"]
    results = await asyncio.gather(*(gql.execute(REFRESH, {"t": token}) for _ in range(5)))
    winners = [r for r in results if not r.errors]
    assert len(winners) <= 1
    assert all(r.error_codes == ["UNAUTHENTICATED"] for r in results if r.errors)


async def test_logout_ends_one_login_and_is_idempotent(gql: GraphQLClient) -> None:
    email = unique_email()
    first = await gql.register(email=email)
    second = await login(gql, email)
    logout = "mutation($t: String!) { logout(refreshToken: $t) }"
    assert (await gql.execute(logout, {"t": first["refreshToken"]})).ok() == {"logout": True}
    assert (await gql.execute(logout, {"t": first["refreshToken"]})).ok() == {"logout": True}
    assert (await gql.execute(REFRESH, {"t": first["refreshToken"]})).error_codes == [
        "UNAUTHENTICATED"
    ]
    assert (await gql.execute(REFRESH, {"t": second["refreshToken"]})).ok()
    assert (await gql.execute(logout, {"t": "garbage"})).error_codes == ["UNAUTHENTICATED"]


async def test_logout_all_revokes_every_refresh_token(gql: GraphQLClient) -> None:
    email = unique_email()
    first = await gql.register(email=email)
    second = await login(gql, email)
    assert (await gql.execute("mutation { logoutAll }", token=first["accessToken"])).ok()
    for session in (first, second):
        result = await gql.execute(REFRESH, {"t": session["refreshToken"]})
        assert result.error_codes == ["UNAUTHENTICATED"]


async def test_update_profile(gql: GraphQLClient) -> None:
    token = (await gql.register())["accessToken"]
    query = "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }"
    updated = (await gql.execute(query, {"input": {"displayName": "  Ada  "}}, token=token)).ok()
    assert updated == {"updateProfile": {"displayName": "Ada"}}
    unchanged = (await gql.execute(query, {"input": {}}, token=token)).ok()
    assert unchanged == {"updateProfile": {"displayName": "Ada"}}
    bad = await gql.execute(query, {"input": {"displayName": ""}}, token=token)
    assert bad.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "displayName"}


async def test_change_password_keeps_the_callers_login_only(gql: GraphQLClient) -> None:
    email = unique_email()
    caller = await gql.register(email=email)
    other = await login(gql, email)
    change = """mutation($c: String!, $n: String!) {
        changePassword(currentPassword: $c, newPassword: $n) }"""
    wrong = await gql.execute(
        change, {"c": "wrong pass", "n": "new password 1"}, token=caller["accessToken"]
    )
    assert wrong.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "currentPassword"}
    short = await gql.execute(
        change, {"c": DEFAULT_PASSWORD, "n": "x"}, token=caller["accessToken"]
    )
    assert short.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "newPassword"}

    ok = await gql.execute(
        change, {"c": DEFAULT_PASSWORD, "n": "new password 1"}, token=caller["accessToken"]
    )
    assert ok.ok() == {"changePassword": True}
    assert (await gql.execute(REFRESH, {"t": other["refreshToken"]})).error_codes == [
        "UNAUTHENTICATED"
    ]
    assert (await gql.execute(REFRESH, {"t": caller["refreshToken"]})).ok()
    failed = await gql.execute(LOGIN, {"input": {"email": email, "password": DEFAULT_PASSWORD}})
    assert failed.error_codes == ["UNAUTHENTICATED"]
    assert await login(gql, email, "new password 1")


async def test_delete_account_removes_the_user(gql: GraphQLClient) -> None:
    email = unique_email()
    session = await gql.register(email=email)
    token = session["accessToken"]
    delete = "mutation($p: String!) { deleteAccount(password: $p) }"
    wrong = await gql.execute(delete, {"p": "wrong password"}, token=token)
    assert wrong.error_codes == ["BAD_USER_INPUT"]
    assert (await gql.execute(delete, {"p": DEFAULT_PASSWORD}, token=token)).ok() == {
        "deleteAccount": True
    }
    assert (await gql.execute(ME, token=token)).error_codes == ["UNAUTHENTICATED"]
    assert (await gql.execute(REFRESH, {"t": session["refreshToken"]})).error_codes == [
        "UNAUTHENTICATED"
    ]
    failed = await gql.execute(LOGIN, {"input": {"email": email, "password": DEFAULT_PASSWORD}})
    assert failed.error_codes == ["UNAUTHENTICATED"]
    # The email is free again.
    assert await gql.register(email=email)


async def test_login_rehashes_when_parameters_changed(app: Starlette, gql: GraphQLClient) -> None:
    email = unique_email()
    await gql.register(email=email)
    database = app.state.services.database
    before = (await database.users.get_by_email(email)).password_hash

    # The same store, served by an instance configured with a stronger time cost.
    stronger = app.state.services.settings.model_copy(update={"argon2_time_cost": 2})
    shared = database.client if database.embedded else None
    restarted = create_app(stronger, embedded_client=shared)
    async with serve(restarted) as http:
        await login(GraphQLClient(http), email)
        await login(GraphQLClient(http), email)  # the new hash verifies
    after = (await database.users.get_by_email(email)).password_hash
    assert ",t=1," in before
    assert ",t=2," in after


async def test_deleting_an_account_leaves_nothing_its_racing_requests_wrote(
    gql: GraphQLClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's own folder and conversation creates race the deletion (some are past their
    sign-in when it starts); once the late sweeps have run, nothing owned by the user is left."""
    monkeypatch.setattr(accounts_service, "SWEEPS_AFTER_DELETE", (0.2, 0.4))
    database = app.state.services.database
    deleted = []
    for trial in range(5):
        user = await sign_up(gql)

        async def create(n: int, user: SignedIn = user) -> None:
            await user.execute(CREATE_FOLDER, {"input": {"name": f"f{n}"}})
            await user.execute(CREATE_CONVERSATION, {"input": {"title": f"c{n}"}})

        racing = [asyncio.create_task(create(n)) for n in range(20)]
        for _ in range(trial + 1):
            await asyncio.sleep(0)
        await user.ok(
            "mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD}
        )
        await asyncio.gather(*racing)
        deleted.append(ObjectId(user.user_id))
    await asyncio.sleep(0.6)
    for owner in deleted:
        for collection in ("folders", "conversations", "messages"):
            assert await database.db[collection].count_documents({"owner_id": owner}) == 0
