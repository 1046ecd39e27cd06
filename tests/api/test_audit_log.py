"""The audit log through the public API: what each security-relevant or admin action records
(actor, subject, outcome, client address, request id), that no secret reaches it, that only
admins read it, its filters and pages against a model of them, and its retention index."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gql_chat.app import create_app
from tests.conftest import make_settings, serve
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    final_message,
    send_message,
    sign_up,
)

AUDIT = """query($first: Int, $after: String, $user: ID, $action: AuditAction,
        $from: DateTime, $to: DateTime) {
    auditLog(first: $first, after: $after, userId: $user, action: $action, from: $from,
             to: $to) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { id at action outcome actorId subjectId clientIp requestId
                       details { name value } } } } }"""
LOGIN = """mutation($e: String!, $p: String!) {
    login(input: {email: $e, password: $p}) { accessToken refreshToken } }"""
REFRESH = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }"
CLIENT = ("203.0.113.9", 4321)


async def stored_records(app: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        await app.state.services.database.db["audit_log"].find({}).to_list(None)
    )
    return found


def details(entry: dict[str, Any]) -> dict[str, str]:
    return {detail["name"]: detail["value"] for detail in entry["details"]}


async def audit(admin: SignedIn, **variables: Any) -> list[dict[str, Any]]:
    found = (await admin.ok(AUDIT, {"first": 100, **variables}))["auditLog"]
    return [edge["node"] for edge in found["edges"]]


async def admin_of(app: Any, gql: GraphQLClient) -> SignedIn:
    admin = await sign_up(gql)
    await app.state.services.accounts.create_admin(admin.email, "")
    return admin


async def test_sign_ins_are_recorded_with_their_address_request_id_and_outcome() -> None:
    app = create_app(make_settings())
    async with serve(app, client=CLIENT) as http:
        gql = GraphQLClient(http)
        admin, user = await admin_of(app, gql), await sign_up(gql)
        headers = {"X-Request-ID": "req-sign-in-1"}
        signed = (
            await gql.execute(LOGIN, {"e": user.email, "p": DEFAULT_PASSWORD}, headers=headers)
        ).ok()["login"]
        wrong = await gql.execute(LOGIN, {"e": user.email, "p": "not the password"})
        unknown = await gql.execute(LOGIN, {"e": "nobody@example.com", "p": "whatever it is"})
        assert wrong.error_codes == unknown.error_codes == ["UNAUTHENTICATED"]

        entries = await audit(admin, action="SIGN_IN")
        assert [(e["outcome"], e["subjectId"], details(e).get("reason")) for e in entries] == [
            ("FAILURE", None, "unknown_account"),
            ("FAILURE", user.user_id, "wrong_password"),
            ("SUCCESS", user.user_id, None),
        ]
        success = entries[2]
        assert success["actorId"] == user.user_id
        assert success["clientIp"] == CLIENT[0]
        assert success["requestId"] == "req-sign-in-1"
        assert details(success)["method"] == "password"
        assert entries[0]["actorId"] is None

        # The new session's id is recorded, and its token reuse is too.
        await gql.execute(REFRESH, {"t": signed["refreshToken"]})
        reused = await gql.execute(REFRESH, {"t": signed["refreshToken"]})
        assert reused.error_codes == ["UNAUTHENTICATED"]
        [reuse] = await audit(admin, action="TOKEN_REUSE_DETECTED")
        assert (reuse["subjectId"], reuse["outcome"]) == (user.user_id, "FAILURE")
        assert details(reuse)["session"] == details(success)["session"]

        # Nothing secret was kept: no password, token, or hash in any record.
        text = repr(await stored_records(app))
        for secret in [DEFAULT_PASSWORD, "not the password", "whatever it is"]:
            assert secret not in text
        for token in [signed["accessToken"], signed["refreshToken"], user.token]:
            assert token not in text


async def test_the_client_address_is_the_one_trusted_proxies_forward() -> None:
    app = create_app(make_settings(trusted_proxies=["127.0.0.1"]))
    async with serve(app, client=("127.0.0.1", 80)) as http:
        gql = GraphQLClient(http)
        admin = await admin_of(app, gql)
        forwarded = {"X-Forwarded-For": "198.51.100.7, 127.0.0.1"}
        await gql.execute(LOGIN, {"e": admin.email, "p": DEFAULT_PASSWORD}, headers=forwarded)
        [entry] = await audit(admin, action="SIGN_IN")
        assert entry["clientIp"] == "198.51.100.7"


async def test_account_actions_are_recorded_and_outlive_a_deleted_account() -> None:
    app = create_app(make_settings(offline_token_delay=0.0))
    async with serve(app) as http:
        gql = GraphQLClient(http)
        admin, user = await admin_of(app, gql), await sign_up(gql)
        sent = await send_message(user, "share me")
        await final_message(user, sent["assistantMessage"]["id"])
        share = await user.ok(
            "mutation($id: ID!) { shareConversation(id: $id) { id } }",
            {"id": sent["conversation"]["id"]},
        )
        await user.ok("mutation($id: ID!) { revokeShare(id: $id) }", share["shareConversation"])
        assert (
            await user.execute(
                'mutation { changePassword(currentPassword: "wrong one", newPassword: "x") }'
            )
        ).error_codes == ["BAD_USER_INPUT"]
        await user.ok(
            "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: $c) }",
            {"c": DEFAULT_PASSWORD},
        )
        await user.ok("mutation { logoutAll }")
        await user.ok(
            "mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD}
        )

        entries = await audit(admin, user=user.user_id)
        assert [(e["action"], e["outcome"]) for e in reversed(entries)] == [
            ("ACCOUNT_CREATED", "SUCCESS"),
            ("SHARE_CREATED", "SUCCESS"),
            ("SHARE_REVOKED", "SUCCESS"),
            ("PASSWORD_CHANGED", "FAILURE"),
            ("PASSWORD_CHANGED", "SUCCESS"),
            ("SESSION_REVOKED", "SUCCESS"),
            ("ACCOUNT_DELETED", "SUCCESS"),
        ]
        assert all(e["actorId"] == e["subjectId"] == user.user_id for e in entries)
        created, revoked = entries[-2], entries[-3]
        assert (
            details(created)["share"]
            == details(revoked)["share"]
            == share["shareConversation"]["id"]
        )
        assert details(created)["conversation"] == sent["conversation"]["id"]
        assert "share me" not in repr(entries)


async def test_admin_changes_name_the_admin_and_the_user() -> None:
    app = create_app(make_settings())
    async with serve(app) as http:
        gql = GraphQLClient(http)
        admin, user = await admin_of(app, gql), await sign_up(gql)
        variables = {"u": user.user_id}
        await admin.ok(
            "mutation($u: ID!) { setUserBudget(userId: $u, amount: 2.5, period: DAY) { id } }",
            variables,
        )
        await admin.ok(
            'mutation($u: ID!) { setUserModelAccess(userId: $u, models: ["openai/*"]) { id } }',
            variables,
        )
        await admin.ok(
            "mutation($u: ID!) { setUserDisabled(userId: $u, disabled: true) { id } }", variables
        )
        await admin.ok(
            "mutation($u: ID!) { setUserDisabled(userId: $u, disabled: false) { id } }", variables
        )
        entries = list(reversed(await audit(admin, user=user.user_id)))[1:]  # after its creation
        assert [(e["action"], e["actorId"], e["subjectId"], details(e)) for e in entries] == [
            ("BUDGET_CHANGED", admin.user_id, user.user_id, {"budget": "2.5/DAY"}),
            ("MODEL_ACCESS_CHANGED", admin.user_id, user.user_id, {"models": "openai/*"}),
            ("USER_DISABLED", admin.user_id, user.user_id, {}),
            ("USER_ENABLED", admin.user_id, user.user_id, {}),
        ]
        [promotion] = await audit(admin, action="ROLE_CHANGED")
        assert (promotion["actorId"], promotion["subjectId"]) == (None, admin.user_id)
        assert details(promotion) == {"role": "ADMIN", "via": "command_line"}


async def test_only_admins_read_the_log_and_bad_arguments_are_refused() -> None:
    app = create_app(make_settings())
    async with serve(app) as http:
        gql = GraphQLClient(http)
        admin, user = await admin_of(app, gql), await sign_up(gql)
        refused = await user.execute(AUDIT, {})
        assert refused.error_codes == ["FORBIDDEN"]
        assert refused.data is None
        now = datetime.now(UTC)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"from": now.isoformat(), "to": now.isoformat()}, "to"),
            ({"after": "not a cursor"}, "after"),
            ({"first": 101}, "first"),
        ]
        for variables, field in cases:
            result = await admin.execute(AUDIT, variables)
            assert result.error_codes == ["BAD_USER_INPUT"]
            assert result.errors[0]["extensions"]["field"] == field
        assert await audit(admin, user="not-an-id") == []


@pytest.mark.parametrize("seed", [1, 2])
async def test_filters_and_pages_agree_with_a_model(seed: int) -> None:
    """Random sign-ins (right and wrong) by a few users, then every filter paged through in
    random page sizes: the same records, newest first, as filtering the whole log here."""
    rng = random.Random(seed)
    app = create_app(make_settings())
    async with serve(app) as http:
        gql = GraphQLClient(http)
        admin = await admin_of(app, gql)
        users = [await sign_up(gql) for _ in range(3)]
        for _ in range(25):
            user = rng.choice(users)
            password = DEFAULT_PASSWORD if rng.random() < 0.6 else "a wrong password"
            await gql.execute(LOGIN, {"e": user.email, "p": password})
        everything = await audit(admin)
        assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
        middle = everything[len(everything) // 2]["at"]
        for variables in [
            {},
            {"user": users[0].user_id},
            {"action": "SIGN_IN"},
            {"user": users[1].user_id, "action": "SIGN_IN"},
            {"from": middle},
            {"to": middle},
            {"user": users[2].user_id, "from": everything[-1]["at"], "to": middle},
        ]:
            expected = [e for e in everything if matches(e, variables)]
            paged: list[dict[str, Any]] = []
            after = None
            while True:
                page = (
                    await admin.ok(AUDIT, {**variables, "first": rng.randint(1, 7), "after": after})
                )["auditLog"]
                assert page["totalCount"] == len(expected)
                paged += [edge["node"] for edge in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            assert paged == expected, variables


def matches(entry: dict[str, Any], variables: dict[str, Any]) -> bool:
    user = variables.get("user")
    return (
        (user is None or user in (entry["actorId"], entry["subjectId"]))
        and variables.get("action", entry["action"]) == entry["action"]
        and ("from" not in variables or entry["at"] >= variables["from"])
        and ("to" not in variables or entry["at"] < variables["to"])
    )


async def test_records_expire_after_the_retention_by_a_ttl_index() -> None:
    settings = make_settings(audit_retention=timedelta(days=30))
    app = create_app(settings)
    async with serve(app) as http:
        await sign_up(GraphQLClient(http))
        indexes = await app.state.services.database.db["audit_log"].index_information()
        [stored] = await stored_records(app)
    assert indexes["expiry_ttl"]["expireAfterSeconds"] == 0
    assert indexes["expiry_ttl"]["key"] == [("expires_at", 1)]
    kept = stored["expires_at"].replace(tzinfo=UTC) - stored["at"].replace(tzinfo=UTC)
    assert abs(kept - timedelta(days=30)) < timedelta(seconds=1)


async def test_a_record_that_cannot_be_written_never_fails_the_action(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unavailable(*_: Any) -> None:
        raise ConnectionError("the database is away")

    app = create_app(make_settings())
    async with serve(app) as http:
        gql = GraphQLClient(http)
        user = await sign_up(gql)
        monkeypatch.setattr(app.state.services.audit._store, "append", unavailable)
        signed = await gql.execute(LOGIN, {"e": user.email, "p": DEFAULT_PASSWORD})
        assert signed.ok()["login"]["accessToken"]
    assert any(
        "an audit record could not be written: ConnectionError" in r.getMessage()
        for r in caplog.records
    )
