"""The embedded store's `$group` by hashing groups exactly as mongomock's sort-and-walk does."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from mongomock import aggregate as mongomock_aggregate

import gql_chat.platform
from gql_chat.platform import mongomock_group
from gql_chat.platform.versions import UnsupportedVersion

IDS = [ObjectId() for _ in range(4)]
KEYS: list[Any] = [
    *IDS,
    None,
    "a",
    "b",
    1,
    1.0,
    2,
    True,
    False,
    0,
    datetime(2026, 1, 1, tzinfo=UTC),
    {"k": "a", "o": IDS[0]},
    {"o": IDS[0], "k": "a"},
    {"k": None, "o": IDS[1]},
    [1, 2],
    [1, 2.0],
]
SUMS = {"n": {"$sum": 1}, "total": {"$sum": "$v"}, "values": {"$push": "$v"}}


def documents(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for index in range(300):
        doc: dict[str, Any] = {"_id": index, "v": rng.randrange(100)}
        if rng.random() < 0.9:  # else the key is missing
            doc["key"] = rng.choice(KEYS)
        docs.append(doc)
    return docs


def canonical(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The groups whatever their order and whatever order their values were pushed in:
    mongomock pushes in its sorted order of the keys (`{"k": 1, "o": 2}` before `{"o": 2,
    "k": 1}`), the hashing in the documents' order, as MongoDB does."""
    return {
        (
            mongomock_group.hashable_key(row["_id"]),
            row["n"],
            row["total"],
            tuple(sorted(row["values"])),
        )
        for row in rows
    }


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("key", ["$key", {"k": "$key", "half": {"$gt": ["$v", 50]}}, None])
def test_groups_are_mongomocks(seed: int, key: Any) -> None:
    options = {"_id": key, **SUMS}
    docs = documents(seed)
    original = mongomock_aggregate._handle_group_stage(  # type: ignore[no-untyped-call]
        [dict(d) for d in docs], None, options
    )
    hashed = mongomock_group.group_stage([dict(d) for d in docs], None, options)
    assert len(hashed) == len(original)
    assert canonical(hashed) == canonical(original)


def test_values_are_pushed_in_the_documents_order() -> None:
    """What a median needs: `$sort` then `$push` keeps the sorted order."""
    docs = [{"k": {"a": 1, "b": 2} if i % 2 else {"b": 2, "a": 1}, "v": i} for i in range(9)]
    options = {"_id": "$k", "values": {"$push": "$v"}}
    assert mongomock_group.group_stage(docs, None, options) == [
        {"_id": {"b": 2, "a": 1}, "values": list(range(9))}
    ]


def test_keys_group_as_python_equality_does() -> None:
    key = mongomock_group.hashable_key
    assert key(1) == key(1.0)
    assert key(True) != key(1)
    assert key({"a": 1, "b": [2]}) == key({"b": [2.0], "a": 1})
    assert key([1, 2]) != key([2, 1])
    assert key(None) != key(0)


async def test_an_aggregation_runs_through_it() -> None:
    from gql_chat.store.embedded import open_embedded_client

    gql_chat.platform.install()
    assert mongomock_aggregate._PIPELINE_HANDLERS["$group"] is mongomock_group.group_stage
    collection = open_embedded_client()["test"]["things"]
    await collection.insert_many([{"k": i % 3, "v": i} for i in range(10)])
    rows = await (
        await collection.aggregate([{"$group": {"_id": "$k", "v": {"$sum": "$v"}}}])
    ).to_list(None)
    assert sorted((row["_id"], row["v"]) for row in rows) == [(0, 18), (1, 12), (2, 15)]


def test_an_unchecked_mongomock_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongomock, "__version__", "4.4.0")
    with pytest.raises(UnsupportedVersion, match=r"gql_chat\.platform\.mongomock_group .*4\.4\.0"):
        mongomock_group.install()
