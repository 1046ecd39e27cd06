"""Process endpoints and the app's lifespan."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from gql_chat.api.documents import CACHE_SIZE
from gql_chat.api.gql_schema import GqlChatSchema
from gql_chat.api.view import GraphQLView
from gql_chat.app import create_app, freeze_startup_objects
from gql_chat.config import Settings
from gql_chat.platform.graphql_executor import memos_of
from gql_chat.platform.strawberry_validation import graphql_core_schema
from tests.conftest import serve
from tests.support import GraphQLClient, sign_up


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_database_fails(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    async def failing_command(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("down")

    app.state.services.database.db.command = failing_command
    response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "database unavailable"}


async def test_graphql_get_serves_queries_and_graphiql(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    response = await http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Apollo-Require-Preflight": "1"}
    )
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_no_redirect_on_the_graphql_path(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200


async def test_startup_objects_are_taken_out_of_full_collections(app: Starlette) -> None:
    frozen = gc.get_freeze_count()
    assert frozen > 0  # the first app of the process froze what existed at its start-up
    freeze_startup_objects()
    assert gc.get_freeze_count() == frozen  # later apps (tests) leave the collector alone


async def test_an_app_is_freed_with_its_schema_and_cached_documents(settings: Settings) -> None:
    """Nothing process-wide keeps an app once it is dropped, even after its schema has cached
    and executed documents (a module-level memo keyed by operation once kept every app of the
    test suite, and full collections over them paused the loop for seconds)."""
    app = create_app(settings)
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        for _ in range(2):  # the second execution reads the cached document's memo
            await user.ok("{ me { id email } conversations(first: 5) { edges { node { id } } } }")
    freed = weakref.ref(_schema_of(app))
    del app, http, user
    gc.collect()
    assert freed() is None


async def test_the_schemas_memos_stay_within_its_document_cache(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    """Every new document leaves a memo on the schema; a document the cache drops takes its
    memo with it, so distinct documents without end keep at most the cache's worth."""
    user = await sign_up(GraphQLClient(http))
    for number in range(CACHE_SIZE + 150):
        data = await user.ok(f"{{ me {{ a{number}: id }} }}")
        assert data == {"me": {f"a{number}": user.user_id}}
    gc.collect()  # a dropped document that cyclic garbage still held goes now
    assert len(memos_of(graphql_core_schema(_schema_of(app))).operations) == CACHE_SIZE


def _schema_of(app: Starlette) -> GqlChatSchema:
    (schema,) = {
        route.endpoint.schema
        for route in app.routes
        if isinstance(route, Route | WebSocketRoute) and isinstance(route.endpoint, GraphQLView)
    }
    assert isinstance(schema, GqlChatSchema)
    return schema
