"""Attacks beyond the basics: JWT algorithm games and operator injection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.support import GraphQLClient, SignedIn, create_conversation

ME = "{ me { id } }"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_with_header(header: dict[str, Any], claims: dict[str, Any], secret: str) -> str:
    """A token whose header says anything, HMAC-signed with our secret (key confusion games)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims_for(user_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "iss": "gql_chat",
        "aud": "gql_chat",
        "typ": "access",
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_algorithm_confusion_is_refused(gql: GraphQLClient, alice: SignedIn) -> None:
    claims = claims_for(alice.user_id)
    assert (
        await gql.execute(ME, token=jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256"))
    ).ok()
    forged = [
        signed_with_header({"alg": "RS256", "typ": "JWT"}, claims, TEST_JWT_SECRET),
        signed_with_header({"alg": "ES256", "typ": "JWT"}, claims, TEST_JWT_SECRET),
        signed_with_header({"alg": "HS256", "typ": "JWT", "kid": "../../dev/null"}, claims, ""),
        jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS512"),
        jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS384"),
        signed_with_header({"alg": "none"}, claims, TEST_JWT_SECRET),
        jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256") + "x",
        jwt.encode({**claims, "sub": {"$ne": ""}}, TEST_JWT_SECRET, algorithm="HS256"),
    ]
    for token in forged:
        assert (await gql.execute(ME, token=token)).error_codes == ["UNAUTHENTICATED"], token


async def test_operator_objects_are_rejected_by_the_type_system(
    gql: GraphQLClient, alice: SignedIn
) -> None:
    injected = {"$ne": ""}
    login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }"
    result = await gql.execute(login, {"e": injected, "p": injected})
    assert result.status == 200
    assert result.data is None
    assert "String cannot represent" in result.errors[0]["message"]
    assert (
        "extensions" not in result.errors[0]
        or result.errors[0]["extensions"].get("code") != "INTERNAL_SERVER_ERROR"
    )

    by_id = await alice.execute(
        "query($id: ID!) { conversation(id: $id) { id } }", {"id": {"$gt": ""}}
    )
    assert by_id.data is None
    assert by_id.errors
    assert "ID cannot represent" in by_id.errors[0]["message"]


async def test_regex_metacharacters_in_search_are_harmless(alice: SignedIn) -> None:
    await create_conversation(alice, title="plain title")
    for search in ("$where", "{$ne: 1}", ".*", "(a+)+$", "\\", "[^]", "' || 1==1"):
        result = await alice.ok(
            "query($s: String) { conversations(search: $s, archived: null) { totalCount } }",
            {"s": search},
        )
        assert result["conversations"]["totalCount"] == 0, search
