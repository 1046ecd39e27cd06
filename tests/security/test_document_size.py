"""Document size, the parse/validation cache's memory, and repeated fields (graphql-core's
OverlappingFieldsCanBeMerged is quadratic in fields sharing a response key)."""

from __future__ import annotations

from typing import Any

import pytest

from gql_chat.api.documents import CACHE_BYTES, CACHEABLE_CHARS
from gql_chat.api.schema import build_schema
from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import make_settings, serve
from tests.support import GraphQLClient, within


async def test_same_named_fields_are_refused_in_linear_time(gql: GraphQLClient) -> None:
    # The adversarial document: 8.7 KB, no login, 1.1 s of event loop before the limits.
    many = "{ " + "me{id} " * 1240 + "}"
    with within(0.3):
        result = await gql.execute(many)
    assert result.data is None
    assert result.error_codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert "field selections" in result.errors[0]["message"]
    # Under the selection limit, over the repeated-field limit.
    repeated = "{ " + "me{id} " * 200 + "}"
    with within(0.3):
        result = await gql.execute(repeated)
    assert result.errors[0]["message"].startswith("200 selections of one field")
    assert result.error_codes == ["GRAPHQL_VALIDATION_FAILED"]


async def test_fragments_cannot_hide_repeated_or_expanded_fields(gql: GraphQLClient) -> None:
    # Ten fragments of twenty `me` each, all merged at the root: 200 `me` at one place.
    fragments = " ".join(f"fragment F{i} on Query {{ {'me { id } ' * 20}}}" for i in range(10))
    spread = "{ " + " ".join(f"...F{i}" for i in range(10)) + " } " + fragments
    with within(0.3):
        result = await gql.execute(spread)
    assert result.errors[0]["message"].startswith("200 selections of one field"), result.errors
    # Nested under repeated fields: 13 x 12 `id` at `me.id`, each level within the limit.
    nested = "{ " + "me { ...U } " * 13 + "} fragment U on User { " + "id " * 12 + "}"
    result = await gql.execute(nested)
    assert result.errors[0]["message"].startswith("156 selections of one field")
    within_limit = "{ " + "me { ...U } " * 12 + "} fragment U on User { " + "id " * 12 + "}"
    assert (await gql.execute(within_limit)).error_codes == ["UNAUTHENTICATED"]
    # One fragment of 100 fields spread eleven times: 1,100 expanded selections.
    big = "fragment B on User {" + " id" * 100 + " }"
    eleven = "{ me { " + " ".join("... on User { ...B }" for _ in range(11)) + " } } " + big
    result = await gql.execute(eleven)
    assert "field selections after expanding fragments" in result.errors[0]["message"]


def test_the_new_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GQL_CHAT_MAX_SELECTIONS", "300")
    monkeypatch.setenv("GQL_CHAT_MAX_REPEATED_FIELDS", "5")
    monkeypatch.setenv("GQL_CHAT_MAX_DOCUMENT_BYTES", "4096")
    settings = Settings()
    assert (settings.max_selections, settings.max_repeated_fields) == (300, 5)
    assert settings.max_document_bytes == 4096
    defaults = Settings.model_construct()
    assert (defaults.max_selections, defaults.max_repeated_fields) == (1000, 150)
    assert defaults.max_document_bytes == 65_536


async def test_repeated_field_limit_follows_the_setting() -> None:
    async with serve(create_app(make_settings(max_repeated_fields=3))) as http:
        gql = GraphQLClient(http)
        over = await gql.execute("{ me { id } me { id } me { id } me { id } }")
        assert over.errors[0]["message"].startswith("4 selections of one field")
        fine = await gql.execute("{ me { id } me { id } me { id } }")
        assert fine.error_codes == ["UNAUTHENTICATED"]


async def test_a_large_document_is_refused_before_parsing(gql: GraphQLClient) -> None:
    for document in (
        "{ __typename } #" + "x" * 1_000_000,
        '{ message(id: "' + "x" * 100_000 + '") { id } }',
        "{ __typename } #" + "é" * 40_000,  # 40,000 characters, 80,000 bytes
    ):
        with within(0.3):
            result = await gql.execute(document)
        assert result.data is None
        assert result.error_codes == ["GRAPHQL_PARSE_FAILED"]
        assert "at most 65536" in result.errors[0]["message"]
    assert (await gql.execute("{ __typename } #" + "x" * 60_000)).data == {"__typename": "Query"}


def _cache(schema: Any) -> Any:
    return schema.stages.cache


async def test_the_document_cache_is_bounded_in_memory() -> None:
    """Distinct documents of one long comment (one token each), or of 5,000 tokens (2.8 MB
    of AST each) could pin a gigabyte in the two 512-entry caches; the cache now weighs its
    entries and never holds a large document."""
    schema = build_schema(make_settings())
    cache = _cache(schema)
    for i in range(40):
        await schema.execute(f"{{ __typename }} # {i} " + "x" * 60_000)
    assert len(cache) == 0
    dense = "{ " + "__typename " * 4_900 + "}"
    for i in range(3):
        await schema.execute(f"# {i}\n" + dense)
    assert len(cache) == 0  # each over a sixteenth of the cache
    medium = "{ " + "__typename " * 1_000 + "}"
    for i in range(80):
        await schema.execute(f"# {i}\n" + medium)
    assert 0 < len(cache) < 80
    assert cache.weight <= CACHE_BYTES
    small = "{ __typename }"
    first = await schema.execute(small)
    assert first.data == {"__typename": "Query"}
    assert cache.get(small) is not None
    assert len(small) < CACHEABLE_CHARS
