"""GraphQL over HTTP: negotiation, status codes, CSRF prevention, headers and body limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import GraphQLClient, SignedIn

JSON_HEADERS = {"Content-Type": "application/json"}
NEW_MEDIA = "application/graphql-response+json"


async def post(http: httpx.AsyncClient, body: object, **headers: str) -> httpx.Response:
    return await http.post(
        "/graphql", content=json.dumps(body), headers={**JSON_HEADERS, **headers}
    )


async def test_json_is_the_default_media_type(http: httpx.AsyncClient) -> None:
    response = await post(http, {"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_graphql_response_json_is_negotiated_with_spec_status_codes(
    http: httpx.AsyncClient,
) -> None:
    ok = await post(http, {"query": "{ __typename }"}, Accept=NEW_MEDIA)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith(NEW_MEDIA)

    for body in (
        {"query": "{"},  # parse error
        {"query": "{ nope }"},  # validation error
        {"query": "query($n: Int!) { __typename }", "variables": {"n": "x"}},  # coercion
    ):
        response = await post(http, body, Accept=NEW_MEDIA)
        assert response.status_code == 400, body
        assert "data" not in response.json()
        assert response.json()["errors"]
        legacy = await post(http, body, Accept="application/json")
        assert legacy.status_code == 200

    # The same over GET, which takes Strawberry's own request handling.
    parse_error = await http.get("/graphql", params={"query": "{"}, headers={"Accept": NEW_MEDIA})
    assert (parse_error.status_code, "data" in parse_error.json()) == (400, False)
    assert parse_error.headers["content-type"] == f"{NEW_MEDIA}; charset=utf-8"
    legacy_get = await http.get("/graphql", params={"query": "{"})
    assert (legacy_get.status_code, legacy_get.json()["data"]) == (200, None)

    # A field error is still a 200 with data: the document executed.
    unauthenticated = await post(http, {"query": "{ me { id } }"}, Accept=NEW_MEDIA)
    assert unauthenticated.status_code == 200
    assert unauthenticated.json()["data"] is None
    assert unauthenticated.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    preferred = await post(
        http, {"query": "{ __typename }"}, Accept=f"application/json;q=0.5, {NEW_MEDIA}"
    )
    assert preferred.headers["content-type"].startswith(NEW_MEDIA)
    json_preferred = await post(
        http, {"query": "{ __typename }"}, Accept=f"application/json, {NEW_MEDIA};q=0.5"
    )
    assert json_preferred.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "accept", ["text/xml", "application/xml, text/plain", "application/json;q=0"]
)
async def test_unacceptable_accept_is_406(http: httpx.AsyncClient, accept: str) -> None:
    first = await post(http, {"query": "{ __typename }"}, Accept=accept)
    again = await post(http, {"query": "{ __typename }"}, Accept=accept)
    assert (first.status_code, again.status_code) == (406, 406)
    # Each refusal is its own response: the middleware's headers are not added to it twice.
    assert [name for name, _ in again.headers.multi_items()] == [
        name for name, _ in first.headers.multi_items()
    ]


async def test_a_repeated_header_counts_by_its_first_value(http: httpx.AsyncClient) -> None:
    """As Starlette's `Headers.get`, which the view read before it scanned headers itself."""
    body = json.dumps({"query": "{ __typename }"})
    new_media_first = await http.post(
        "/graphql",
        content=body,
        headers=[
            ("Content-Type", "application/json"),
            ("Accept", NEW_MEDIA),
            ("Accept", "text/xml"),
        ],
    )
    assert new_media_first.status_code == 200
    assert new_media_first.headers["content-type"] == f"{NEW_MEDIA}; charset=utf-8"
    refused_first = await http.post(
        "/graphql",
        content=body,
        headers=[("Content-Type", "application/json"), ("Accept", "text/xml"), ("Accept", "*/*")],
    )
    assert refused_first.status_code == 406
    not_json_first = await http.post(
        "/graphql",
        content=body,
        headers=[("Content-Type", "text/csv"), ("Content-Type", "application/json")],
    )
    assert not_json_first.status_code == 415


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_simple_content_types_are_refused_as_csrf(
    http: httpx.AsyncClient, content_type: str
) -> None:
    body = json.dumps({"query": "mutation { logoutAll }"})
    refused = await http.post("/graphql", content=body, headers={"Content-Type": content_type})
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert "CSRF" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_get_runs_queries_as_urql_sends_them_and_never_mutates(
    http: httpx.AsyncClient, alice: SignedIn
) -> None:
    """urql's defaults: queries over GET, no preflight header. A cross-site GET carries no
    bearer token (browsers never add one), so it runs as nobody; mutations over GET are 405."""
    accept = {"Accept": "application/graphql-response+json, application/json"}
    query = {"query": "query Name { __typename }", "operationName": "Name", "variables": "{}"}
    allowed = await http.get("/graphql", params=query, headers=accept)
    assert allowed.status_code == 200
    assert allowed.json() == {"data": {"__typename": "Query"}}
    me = {"query": "{ me { id } }"}
    signed_in = await http.get(
        "/graphql", params=me, headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert signed_in.json() == {"data": {"me": {"id": alice.user_id}}}
    with_cookie = await http.get("/graphql", params=me, headers={"Cookie": f"token={alice.token}"})
    assert with_cookie.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for headers in ({}, {"Apollo-Require-Preflight": "1"}):
        mutation = await http.get(
            "/graphql", params={"query": "mutation { logoutAll }"}, headers=headers
        )
        assert mutation.status_code == 405


async def test_batched_requests_are_refused(http: httpx.AsyncClient) -> None:
    response = await post(http, [{"query": "{ __typename }"}, {"query": "{ __typename }"}])
    assert response.status_code == 400


async def test_malformed_bodies_are_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", content=b"{not json", headers=JSON_HEADERS)
    assert response.status_code == 400
    missing = await post(http, {"variables": {}})
    assert missing.status_code == 400
    for body, complaint in (
        ("just a string", "must be a JSON object"),
        ({"query": 42}, "`query` must be a string"),
        ({"query": "{ __typename }", "operationName": ["A"]}, "`operationName` must be a string"),
        ({"query": "{ __typename }", "variables": [1]}, "`variables` must be an object"),
        ({"query": "{ __typename }", "extensions": "x"}, "`extensions` must be an object"),
    ):
        response = await post(http, body)
        assert (response.status_code, complaint in response.text) == (400, True), body


async def test_json_content_type_parameters_are_accepted(http: httpx.AsyncClient) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        response = await http.post(
            "/graphql",
            content=json.dumps({"query": "{ __typename }"}),
            headers={"Content-Type": content_type},
        )
        assert response.json() == {"data": {"__typename": "Query"}}, content_type


async def test_bodies_over_the_limit_are_413(http: httpx.AsyncClient) -> None:
    big = {"query": "{ __typename }", "variables": {"pad": "x" * 1_100_000}}
    declared = await post(http, big)
    assert declared.status_code == 413
    assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"x" * 100_000

    streamed = await http.post("/graphql", content=chunks(), headers=JSON_HEADERS)
    assert streamed.status_code == 413
    assert streamed.json()["errors"][0]["message"].startswith("Request body too large")


async def test_security_headers_and_request_ids(http: httpx.AsyncClient) -> None:
    response = await post(http, {"query": "{ __typename }"}, **{"X-Request-ID": "trace-123"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-request-id"] == "trace-123"
    generated = await post(
        http, {"query": "{ __typename }"}, **{"X-Request-ID": "bad id with spaces"}
    )
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_cors_allows_only_configured_origins(gql: GraphQLClient) -> None:
    preflight = await gql.http.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
