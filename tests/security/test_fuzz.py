"""Schema-driven fuzzing: generated queries and mutations, signed in or not, never cause a 5xx
or an INTERNAL_SERVER_ERROR. Bounded for CI by the example count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries
from starlette.applications import Starlette

from gql_chat.app import create_app
from tests.conftest import make_settings, serve
from tests.support import GraphQLClient, sign_up

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
    # A literal where a file belongs: what a client that forgot the multipart request sends.
    "Upload": st.text(max_size=20).map(nodes.String),
}
DOCUMENTS = queries(SCHEMA, custom_scalars=SCALARS) | mutations(SCHEMA, custom_scalars=SCALARS)


class FuzzTarget:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token


@pytest.fixture
async def target() -> AsyncIterator[FuzzTarget]:
    app: Starlette = create_app(make_settings(offline_token_delay=0))
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        yield FuzzTarget(http, user.token)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=DOCUMENTS, signed_in=st.booleans())
async def test_generated_operations_never_fail_internally(
    target: FuzzTarget, document: str, signed_in: bool
) -> None:
    headers = {"Authorization": f"Bearer {target.token}"} if signed_in else {}
    response = await target.http.post("/graphql", json={"query": document}, headers=headers)
    assert response.status_code < 500, (document, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        codes = [e.get("extensions", {}).get("code") for e in response.json().get("errors") or []]
        assert "INTERNAL_SERVER_ERROR" not in codes, (document, response.text)
