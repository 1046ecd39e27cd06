"""Document limits, and what production mode turns off."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import serve
from tests.support import GraphQLClient

NESTED_FOLDERS = "{ folders { " + "parent { " * 12 + "id" + " }" * 12 + " } }"


async def test_depth_limit(gql: GraphQLClient) -> None:
    result = await gql.execute(NESTED_FOLDERS)
    assert result.data is None
    assert "exceeds maximum operation depth" in result.errors[0]["message"]
    assert result.error_codes == ["GRAPHQL_VALIDATION_FAILED"]
    within = "{ folders { " + "parent { " * 10 + "id" + " }" * 10 + " } }"
    assert "depth" not in str((await gql.execute(within)).errors)


async def test_alias_limit_and_token_limit(gql: GraphQLClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    result = await gql.execute(aliases)
    assert result.data is None
    assert "aliases" in result.errors[0]["message"]
    assert result.error_codes == ["GRAPHQL_VALIDATION_FAILED"]
    fine = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
    assert (await gql.execute(fine)).data["a29"] == "Query"

    tokens = "{ " + " ".join("__typename" for _ in range(5001)) + " }"
    result = await gql.execute(tokens)
    assert result.data is None
    assert "token" in result.errors[0]["message"].lower()


async def test_fragment_spread_limit_is_a_setting(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GQL_CHAT_MAX_FRAGMENT_SPREADS", "7")
    assert Settings().max_fragment_spreads == 7
    assert Settings.model_construct().max_fragment_spreads == 100

    two = settings_factory(max_fragment_spreads=2)
    fragment = " fragment A on User { id }"
    over = await run_with(two, {"query": "{ me { ...A ... on User { ...A ...A } } }" + fragment})
    assert over.json()["errors"] == [
        {
            "message": "3 fragment spreads after expanding fragments. Allowed: 2",
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }
    ]
    within = await run_with(two, {"query": "{ me { ...A ...A } }" + fragment})
    assert within.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def run_with(settings: Settings, body: dict[str, object], **headers: str) -> httpx.Response:
    app = create_app(settings)
    async with serve(app) as http:
        return await http.post("/graphql", json=body, headers=headers)


async def get_page(settings: Settings) -> httpx.Response:
    app = create_app(settings)
    async with serve(app) as http:
        return await http.get("/graphql", headers={"Accept": "text/html"})


async def test_introspection_suggestions_and_graphiql_can_be_off(
    settings_factory: Callable[..., Settings],
) -> None:
    # What production does by default (see the next test), on the embedded store.
    production = settings_factory(enable_introspection=False, enable_graphiql=False)
    introspection = await run_with(production, {"query": "{ __schema { types { name } } }"})
    assert "introspection" in introspection.json()["errors"][0]["message"].lower()
    typo = await run_with(production, {"query": "{ mee { id } }"})
    assert "Did you mean" not in typo.json()["errors"][0]["message"]
    assert (await get_page(production)).status_code in (404, 406)

    development = settings_factory()
    assert (
        "data"
        in (await run_with(development, {"query": "{ __schema { queryType { name } } }"})).json()
    )
    typo = await run_with(development, {"query": "{ mee { id } }"})
    assert "Did you mean" in typo.json()["errors"][0]["message"]
    assert (await get_page(development)).status_code == 200


def test_production_defaults() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(env="production", jwt_secret="s" * 40)
    with pytest.raises(ValidationError):
        Settings(env="production", mongodb_url="mongodb://db")
    settings = Settings(env="production", jwt_secret="s" * 40, mongodb_url="mongodb://db")
    assert settings.introspection_enabled is False
    assert settings.graphiql_enabled is False
    assert Settings(
        env="production", jwt_secret="s" * 40, mongodb_url="mongodb://db", enable_introspection=True
    ).introspection_enabled
