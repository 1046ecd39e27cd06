"""A page of 100 conversations with folders and presets costs a constant number of queries."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
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


_inside_operation: ContextVar[bool] = ContextVar("inside_operation", default=False)


def count_round_trips(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls on the collection class in use (embedded store or PyMongo alike), the
    outermost only: PyMongo's `find_one` runs a `find` of its own, which is the same round
    trip, not a second one."""
    calls: Counter[str] = Counter()
    collection_class = type(app.state.services.database.db["users"])
    for name in OPERATIONS:
        original = getattr(collection_class, name)

        def counted(original: Callable[..., Any] = original, name: str = name) -> Any:
            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if _inside_operation.get():
                    return original(self, *args, **kwargs)
                calls[f"{self.name}.{name}"] += 1
                token = _inside_operation.set(True)
                try:
                    result = original(self, *args, **kwargs)
                finally:
                    _inside_operation.reset(token)
                return _marked(result) if inspect.isawaitable(result) else result

            return wrapper

        monkeypatch.setattr(collection_class, name, counted())
    return calls


async def _marked(operation: Awaitable[Any]) -> Any:
    """Awaits `operation` with the marker set, so the calls it makes are not counted again."""
    token = _inside_operation.set(True)
    try:
        return await operation
    finally:
        _inside_operation.reset(token)


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


async def filed_conversations(alice: SignedIn, count: int) -> dict[str, tuple[str, str]]:
    """`count` conversations spread over 3 folders and 3 presets: id -> (folder id, preset id)."""
    folders = [await create_folder(alice, f"folder{i}") for i in range(3)]
    presets = [await create_preset(alice, f"preset{i}") for i in range(3)]
    filed = {}
    for i in range(count):
        folder, preset = folders[i % 3], presets[(i + 1) % 3]
        conversation = await create_conversation(alice, folderId=folder, llmConfigId=preset)
        filed[conversation] = (folder, preset)
    return filed


LINKS_THROUGH_FRAGMENTS = """
fragment Row on Conversation { id folder { id } ...Preset }
fragment Preset on Conversation { llmConfig { id } }
query($folder: ID!) {
  all: conversations(first: 50) { edges { ... on ConversationEdge { node { ...Row } } } }
  folder(id: $folder) { conversations(first: 50) { edges { node { ...Row } } } }
}"""


async def test_rows_get_their_own_folder_and_preset_however_the_selection_is_written(
    app: Starlette, alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    filed = await filed_conversations(alice, 12)
    some_folder = next(iter(filed.values()))[0]

    calls = count_round_trips(app, monkeypatch)
    data = await alice.ok(LINKS_THROUGH_FRAGMENTS, {"folder": some_folder})

    rows = data["all"]["edges"] + data["folder"]["conversations"]["edges"]
    assert len(rows) == 12 + 4
    for row in rows:
        node = row["node"]
        assert (node["folder"]["id"], node["llmConfig"]["id"]) == filed[node["id"]]
    # Each connection reads its folders and its presets once, whatever the number of rows.
    assert calls["folders.find"] <= 2, calls
    assert calls["llm_configs.find"] <= 2, calls


async def test_a_page_that_selects_no_folder_or_preset_reads_neither(
    app: Starlette, alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    await filed_conversations(alice, 5)

    calls = count_round_trips(app, monkeypatch)
    data = await alice.ok("{ conversations(first: 10) { edges { node { id title } } } }")

    assert len(data["conversations"]["edges"]) == 5
    assert calls["folders.find"] == calls["llm_configs.find"] == 0, calls


async def test_a_single_conversation_loads_its_folder_and_preset_on_demand(
    alice: SignedIn,
) -> None:
    ((conversation, (folder, preset)),) = (await filed_conversations(alice, 1)).items()

    data = await alice.ok(
        "query($id: ID!) { conversation(id: $id) { folder { id } llmConfig { id } } }",
        {"id": conversation},
    )

    assert data["conversation"] == {"folder": {"id": folder}, "llmConfig": {"id": preset}}
