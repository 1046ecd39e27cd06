"""Which operation an HTTP request runs: subscriptions need a websocket, and a document of
several operations needs `operationName`."""

from __future__ import annotations

import httpx

from tests.support import SignedIn

GRAPHQL_RESPONSE = "application/graphql-response+json"
PREFLIGHT = {"Apollo-Require-Preflight": "1"}


async def test_a_subscription_over_http_is_a_clear_request_error(
    http: httpx.AsyncClient, alice: SignedIn
) -> None:
    auth = {"Authorization": f"Bearer {alice.token}"}
    query = "subscription { userEvents { kind } }"
    posted = await http.post("/graphql", json={"query": query}, headers=auth)
    assert posted.status_code == 200
    body = posted.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_REQUEST"]
    assert "websocket" in body["errors"][0]["message"]
    strict = await http.post(
        "/graphql", json={"query": query}, headers={**auth, "Accept": GRAPHQL_RESPONSE}
    )
    assert strict.status_code == 400
    assert "data" not in strict.json()
    got = await http.get("/graphql", params={"query": query}, headers={**auth, **PREFLIGHT})
    assert got.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # A mutation over GET is still 405.
    mutation = await http.get(
        "/graphql", params={"query": "mutation { logoutAll }"}, headers=PREFLIGHT
    )
    assert mutation.status_code == 405


async def test_several_operations_need_an_operation_name(http: httpx.AsyncClient) -> None:
    document = "query A { __typename } query B { me { id } }"
    unnamed = await http.post("/graphql", json={"query": document})
    body = unnamed.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["OPERATION_RESOLUTION_FAILURE"]
    assert "operation name" in body["errors"][0]["message"]
    strict = await http.post(
        "/graphql", json={"query": document}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert strict.status_code == 400
    named = await http.post("/graphql", json={"query": document, "operationName": "A"})
    assert named.json() == {"data": {"__typename": "Query"}}
    single = await http.post("/graphql", json={"query": "query A { __typename }"})
    assert single.json() == {"data": {"__typename": "Query"}}
