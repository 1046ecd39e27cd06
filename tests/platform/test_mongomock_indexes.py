"""The embedded store's key lookups answer exactly as mongomock's full scans do."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.clock import utc_now
from gql_chat.platform import mongomock_indexes
from gql_chat.platform.mongomock_indexes import candidate_ids, wanted_ids
from gql_chat.platform.versions import UnsupportedVersion
from gql_chat.store.embedded import open_embedded_client
from gql_chat.store.indexes import ensure_indexes

IDS = [ObjectId() for _ in range(6)]


async def seeded_collection() -> Any:
    collection = open_embedded_client()["test"]["things"]
    for index, _id in enumerate(IDS):
        await collection.insert_one({"_id": _id, "n": index, "even": index % 2 == 0})
    return collection


@pytest.mark.parametrize(
    "query",
    [
        {"_id": IDS[2]},
        {"_id": IDS[2], "even": False},
        {"_id": ObjectId()},
        {"_id": {"$in": [IDS[4], IDS[1], IDS[4], ObjectId()]}},
        {"_id": {"$in": IDS}, "n": {"$gte": 3}},
        {"_id": {"$in": []}},
    ],
)
async def test_a_lookup_by_id_finds_what_a_scan_finds(query: dict[str, Any]) -> None:
    collection = await seeded_collection()
    assert wanted_ids(query) is not None
    scan = {"$and": [query]}  # no top-level `_id`: the full scan
    assert wanted_ids(scan) is None
    found = sorted([doc["n"] async for doc in collection.find(query)])
    assert found == sorted([doc["n"] async for doc in collection.find(scan)])


@pytest.mark.parametrize(
    "query",
    [{}, {"n": 1}, {"_id": {"$gt": IDS[0]}}, {"_id": {"$in": ["x"]}}, {"_id": "x"}, ["_id"]],
)
def test_other_filters_keep_the_full_scan(query: Any) -> None:
    assert wanted_ids(query) is None


async def test_updates_and_deletes_by_id_touch_only_their_document() -> None:
    collection = await seeded_collection()
    await collection.update_one({"_id": IDS[3], "even": True}, {"$set": {"n": 99}})  # no match
    await collection.update_one({"_id": IDS[3]}, {"$set": {"n": 30}})
    await collection.delete_one({"_id": {"$in": [IDS[5]]}})
    assert [d["n"] async for d in collection.find({}).sort("_id", ASCENDING)] == [0, 1, 2, 30, 4]


async def test_a_lookup_by_id_still_honours_ttl_indexes() -> None:
    collection = open_embedded_client()["test"]["sessions"]
    await collection.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])
    expired, live = ObjectId(), ObjectId()
    await collection.insert_one({"_id": expired, "expires_at": utc_now() - timedelta(hours=1)})
    await collection.insert_one({"_id": live, "expires_at": utc_now() + timedelta(hours=1)})
    assert await collection.find_one({"_id": expired}) is None
    assert await collection.find_one({"_id": live}) is not None


async def test_a_partial_unique_index_binds_only_the_documents_it_covers() -> None:
    collection = open_embedded_client()["test"]["messages"]
    await ensure_indexes(
        collection,
        [
            IndexModel(
                [("owner", ASCENDING), ("client_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"client_id": {"$type": "string"}},
            )
        ],
    )
    for _ in range(3):  # outside the index: never a conflict
        await collection.insert_one({"owner": 1})
    await collection.insert_one({"owner": 1, "client_id": "a"})
    await collection.insert_one({"owner": 2, "client_id": "a"})
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"owner": 1, "client_id": "a"})
    assert await collection.count_documents({}) == 5


TAGS = ["red", "blue", ObjectId(), ObjectId()]
HASHED_QUERIES: list[dict[str, Any]] = [
    {"tag": "red"},
    {"tag": "blue", "n": {"$gte": 2}},
    {"tag": TAGS[2]},
    {"tag": {"$in": ["red", TAGS[3], "green"]}},
    {"owner": "a"},
    {"owner": "b", "tag": "red"},
    {"tag": "green"},
]


async def assert_lookups_match_scans(collection: Any) -> None:
    for query in HASHED_QUERIES:
        direct = sorted([doc["n"] async for doc in collection.find(query)])
        scanned = sorted([doc["n"] async for doc in collection.find({"$and": [query]})])
        assert direct == scanned, query


async def test_hashed_fields_find_what_a_scan_finds_after_every_kind_of_write() -> None:
    collection = open_embedded_client()["test"]["tagged"]
    for n in range(8):  # some documents exist before the index does
        await collection.insert_one({"n": n, "tag": TAGS[n % 4], "owner": "abcd"[n // 2]})
    await collection.create_index([("tag", ASCENDING), ("owner", ASCENDING)], unique=True)
    await collection.insert_one({"n": 8, "tag": ["red", "blue"], "owner": "c"})  # an array
    await collection.insert_one({"n": 9, "owner": "e"})  # no tag at all
    await assert_lookups_match_scans(collection)

    writes = [
        collection.update_one({"n": 0}, {"$set": {"tag": "green"}}),
        collection.update_one({"n": 1}, {"$unset": {"tag": ""}}),
        collection.update_one({"n": 2}, {"$rename": {"tag": "label"}}),
        collection.update_one({"n": 9}, {"$set": {"tag": TAGS[3]}}),
        collection.update_one({"n": 3}, [{"$set": {"tag": "red"}}]),  # a pipeline update
        collection.replace_one({"n": 4}, {"n": 4, "tag": "blue", "owner": "b"}),
        collection.update_one({"n": 10}, {"$set": {"tag": "red", "owner": "z"}}, upsert=True),
        collection.update_one({"n": 8}, {"$set": {"tag": "green"}}),  # array to value
        collection.delete_one({"tag": "blue", "owner": "b"}),
        collection.delete_many({"owner": "d", "tag": {"$in": [TAGS[2], TAGS[3]]}}),
    ]
    for write in writes:
        await write
        await assert_lookups_match_scans(collection)

    # An update that breaks the unique index is rolled back, and so is its index entry.
    with pytest.raises(DuplicateKeyError):
        await collection.update_one({"n": 5}, {"$set": {"tag": "red", "owner": "b"}})
    assert (await collection.find_one({"n": 5}))["tag"] == TAGS[1]
    await assert_lookups_match_scans(collection)

    await collection.drop()
    await collection.insert_one({"n": 0, "tag": "red", "owner": "a"})
    await assert_lookups_match_scans(collection)


async def test_hashed_fields_forget_what_a_ttl_index_expires() -> None:
    collection = open_embedded_client()["test"]["sessions"]
    await collection.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])
    await collection.create_index([("user", ASCENDING)])
    await collection.insert_one({"user": "u", "expires_at": utc_now() - timedelta(hours=1)})
    await collection.insert_one({"user": "u", "expires_at": utc_now() + timedelta(hours=1)})
    assert await collection.count_documents({"user": "u"}) == 1
    assert await collection.count_documents({"$and": [{"user": "u"}]}) == 1


async def test_a_hashed_field_reads_only_the_documents_holding_its_values() -> None:
    collection = open_embedded_client()["test"]["tagged"]
    await collection.create_index([("tag", ASCENDING), ("n", ASCENDING)])
    ids = [
        (await collection.insert_one({"n": n, "tag": TAGS[n % 4]})).inserted_id for n in range(8)
    ]
    store = collection._store
    assert candidate_ids(store, {"tag": "red", "n": {"$gt": 0}}) == [ids[0], ids[4]]
    assert candidate_ids(store, {"tag": {"$in": ["blue", "red"]}}) == [
        ids[1],
        ids[5],
        ids[0],
        ids[4],
    ]
    assert candidate_ids(store, {"n": 1}) is None  # only ObjectIds and strings are hashed
    assert candidate_ids(store, {"$or": [{"tag": "red"}]}) is None


def test_an_unchecked_mongomock_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongomock, "__version__", "4.4.0")
    with pytest.raises(UnsupportedVersion) as raised:
        mongomock_indexes.install()
    message = str(raised.value)
    assert "gql_chat.platform.mongomock_indexes" in message
    assert "mongomock 4.3.*" in message
    assert "found mongomock 4.4.0" in message


def test_an_unchecked_pymongo_async_mock_version_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongomock_indexes, "distribution_version", lambda name: "0.2.0")
    with pytest.raises(UnsupportedVersion, match=r"found .*pymongo-async-mock 0\.2\.0"):
        mongomock_indexes.require_supported_versions()


async def test_an_aggregation_reads_only_what_its_leading_match_selects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its result is the whole collection's (a scan then the pipeline), but the documents it
    hands to the pipeline are those of the first `$match`, found through the hash index."""
    collection = open_embedded_client()["test"]["aggregated"]
    await collection.create_index([("tag", ASCENDING)])
    for n in range(40):
        await collection.insert_one({"n": n, "tag": TAGS[n % 4], "cost": n / 2})
    pipelines: list[list[dict[str, Any]]] = [
        [{"$match": {"tag": "red"}}, {"$group": {"_id": "$tag", "total": {"$sum": "$cost"}}}],
        [{"$match": {"tag": {"$in": ["red", "blue"]}, "n": {"$gte": 10}}}, {"$sort": {"n": -1}}],
        [{"$group": {"_id": "$tag", "count": {"$sum": 1}}}, {"$sort": {"_id": 1}}],
        [{"$match": {"n": {"$lt": 3}}}],
        [
            {"$match": {"tag": "blue"}},
            {"$project": {"cost": 1, "tag": True}},
            {"$group": {"_id": "$tag", "total": {"$sum": "$cost"}}},
        ],
        [{"$match": {"tag": "red"}}, {"$project": {"cost": 0}}],  # an exclusion stays a stage
        [{"$match": {"tag": "red"}}, {"$project": {"doubled": {"$multiply": ["$n", 2]}}}],
    ]
    handed: list[int] = []
    fields: list[set[str]] = []
    process: Callable[..., Any] = mongomock.aggregate.process_pipeline

    def counting(documents: list[Any], *args: Any) -> Any:
        handed.append(len(documents))
        fields.append(set().union(*(set(doc) for doc in documents)))
        return process(documents, *args)

    monkeypatch.setattr(mongomock.aggregate, "process_pipeline", counting)
    everything = [doc async for doc in collection.find({})]
    for pipeline in pipelines:
        got = [doc async for doc in await collection.aggregate(pipeline)]
        assert got == list(process(list(everything), None, pipeline, None))
    assert handed == [10, 14, 40, 3, 10, 10, 10]
    whole = {"_id", "n", "tag", "cost"}
    assert fields == [whole, whole, whole, whole, {"_id", "cost", "tag"}, whole, whole]


@pytest.mark.parametrize("seed", range(5))
async def test_ttl_expiry_matches_a_model_as_time_passes_and_documents_change(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random inserts, updates (to sooner, later, no date) and deletes while a fake clock moves:
    after each step the collection holds exactly the documents whose time has not come, as
    mongomock's own scan at every access would leave it."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    clock = [start]
    monkeypatch.setattr(mongomock, "utcnow", lambda: clock[0])
    collection = open_embedded_client()["test"][f"ttl{seed}"]
    await collection.create_index([("expires_at", ASCENDING)], expireAfterSeconds=5)
    model: dict[int, Any] = {}

    def when() -> Any:
        value = start + timedelta(seconds=rng.randint(-10, 60))
        return rng.choice([value, value.replace(tzinfo=UTC), None, "not a date"])

    for step in range(120):
        action = rng.random()
        if action < 0.4:
            model[step] = when()
            await collection.insert_one({"_id": step, "expires_at": model[step]})
        elif action < 0.7 and model:
            key = rng.choice(list(model))
            model[key] = when()
            await collection.update_one({"_id": key}, {"$set": {"expires_at": model[key]}})
        elif action < 0.8 and model:
            key = rng.choice(list(model))
            del model[key]
            await collection.delete_one({"_id": key})
        else:
            clock[0] += timedelta(seconds=rng.randint(0, 4))
        model = {key: value for key, value in model.items() if not due(value, clock[0])}
        stored = sorted([doc["_id"] async for doc in collection.find({})])
        assert stored == sorted(model), step


def due(value: Any, now: datetime) -> bool:
    if not isinstance(value, datetime):
        return False
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return naive + timedelta(seconds=5) <= now


async def test_a_ttl_collection_is_not_scanned_before_anything_in_it_is_due() -> None:
    """An insert into a growing collection with a long TTL (the audit log) costs the same
    whatever its size: the whole-collection scan runs only when a document may be due."""
    collection = open_embedded_client()["test"]["long_ttl"]
    await collection.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    later = utc_now() + timedelta(days=365)
    scans = []
    original = mongomock_indexes._expire_all

    def counting(store: Any) -> None:
        scans.append(store)
        original(store)

    mongomock_indexes._expire_all = counting
    try:
        for n in range(200):
            await collection.insert_one({"n": n, "expires_at": later})
        assert len(scans) <= 1  # the first access works the earliest expiry out
        await collection.insert_one({"n": "soon", "expires_at": utc_now() - timedelta(seconds=1)})
        assert await collection.count_documents({"n": "soon"}) == 0
        assert await collection.count_documents({}) == 200
    finally:
        mongomock_indexes._expire_all = original
