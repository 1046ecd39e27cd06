"""The request's Content-Type: exactly `application/json`, optionally with `charset=utf-8`.

Anything else that is not refused earlier (406 for Accept, 400 for CSRF) is 415 Unsupported Media
Type: `application/jsonx` or `charset=utf-7` used to be read as JSON."""

from __future__ import annotations

import json

import httpx
import pytest

from gql_chat.api.http_rules import is_json_content_type

BODY = json.dumps({"query": "{ __typename }"})
PREFLIGHT = {"Apollo-Require-Preflight": "1"}


async def post(http: httpx.AsyncClient, content_type: str | None, **headers: str) -> httpx.Response:
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return await http.post("/graphql", content=BODY, headers=all_headers)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json;charset=utf-8",
        "application/json; charset=utf-8",
        "application/json ; charset=UTF-8",
        'application/json; Charset="utf-8"',
        "application/json;",
        "  application/json  ",
    ],
)
async def test_json_is_accepted(http: httpx.AsyncClient, content_type: str) -> None:
    response = await post(http, content_type)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/jsonx",
        "application/json-patch+json",
        "application/graphql-response+json",
        "application/x-json",
        "text/json",
        "application/json; charset=utf-7",
        "application/json; charset=utf-16",
        "application/json; charset=latin-1",
        "application/json; charset=utf8",
        "application/json; charset = utf-8",
        "application/json; charset=utf-8; charset=utf-8",
        "application/json; boundary=x",
        "application/json, text/plain",
        "application/graphql",
    ],
)
async def test_anything_else_is_415(http: httpx.AsyncClient, content_type: str) -> None:
    response = await post(http, content_type)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "Content-Type: application/json" in response.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_simple_or_missing_content_types_with_a_preflight_header_are_415(
    http: httpx.AsyncClient, content_type: str | None
) -> None:
    """Without a preflight header these are CSRF suspects (400, see test_http.py)."""
    response = await post(http, content_type, **PREFLIGHT)
    assert response.status_code == 415


async def test_refusals_keep_their_order(http: httpx.AsyncClient) -> None:
    """406 (nothing we can answer in) comes first, then the CSRF rule, then 415."""
    assert (await post(http, "application/jsonx", Accept="text/xml")).status_code == 406
    assert (await post(http, "text/plain")).status_code == 400
    assert (await post(http, "text/plain", **PREFLIGHT)).status_code == 415


async def test_get_and_multipart_are_handled_as_before(http: httpx.AsyncClient) -> None:
    """GET ignores the content type; a multipart request (file uploads) runs its operation, and
    one Strawberry cannot read is its own 400."""
    get = await http.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={**PREFLIGHT, "Content-Type": "application/jsonx"},
    )
    assert get.json() == {"data": {"__typename": "Query"}}
    multipart = await http.post(
        "/graphql",
        files={"operations": (None, BODY), "map": (None, "{}")},
        headers=PREFLIGHT,
    )
    assert multipart.json() == {"data": {"__typename": "Query"}}
    missing_file = await http.post(
        "/graphql",
        files={"operations": (None, BODY), "map": (None, json.dumps({"0": ["variables.f"]}))},
        headers=PREFLIGHT,
    )
    assert missing_file.status_code == 400
    assert "File(s) missing" in missing_file.text


async def test_accept_negotiation_is_unchanged(http: httpx.AsyncClient) -> None:
    response = await post(
        http, "application/json; charset=utf-8", Accept="application/graphql-response+json"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/graphql-response+json")


def test_the_rule_itself() -> None:
    assert is_json_content_type("application/json")
    assert not is_json_content_type(None)
    assert not is_json_content_type("")
    assert not is_json_content_type('application/json; charset="utf-8')
