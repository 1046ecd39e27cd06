"""A page of 100 conversations with folders and presets costs a constant number of queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette

from tests.support import SignedIn, create_conversation, create_folder, create_preset

OPERATIONS = (
    "find",
    "find_one",
    "find_one_and_update",
    "count_documents",
    "distinct",
    "aggregate",
    "insert_one",
    "update_one",
    "update_many",
)


def count_round_trips(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls on the collection class in use (embedded store or PyMongo alike)."""
    calls: Counter[str] = Counter()
    collection_class = type(app.state.services.database.db["users"])
    for name in OPERATIONS:
        original = getattr(collection_class, name)

        def counted(original: Callable[..., Any] = original, name: str = name) -> Any:
            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                calls[f"{self.name}.{name}"] += 1
                return original(self, *args, **kwargs)

            return wrapper

        monkeypatch.setattr(collection_class, name, counted())
    return calls


async def test_listing_100_conversations_is_a_constant_number_of_queries(
    app: Starlette, alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    parents = [await create_folder(alice, f"parent{i}") for i in range(5)]
    folders = [await create_folder(alice, f"f{i}", parents[i % 5]) for i in range(10)]
    presets = [await create_preset(alice, f"p{i}") for i in range(10)]
    for i in range(100):
        await create_conversation(alice, folderId=folders[i % 10], llmConfigId=presets[i % 10])

    calls = count_round_trips(app, monkeypatch)
    data = await alice.ok(
        """{ conversations(first: 100) { totalCount edges { node {
            id folder { id name parent { id name } } llmConfig { id name model } } } } }"""
    )
    edges = data["conversations"]["edges"]
    assert len(edges) == 100
    assert all(e["node"]["folder"]["parent"] and e["node"]["llmConfig"] for e in edges)
    # user lookup, page, count, folders, parents, presets
    assert sum(calls.values()) <= 6, calls
