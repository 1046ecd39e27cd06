"""However many embedded collections are opened, a bulk update goes through one layer of
pymongo-async-mock's `sort` patch (it used to add one per collection, until RecursionError)."""

from __future__ import annotations

import pytest
from mongomock.collection import BulkOperationBuilder
from pymongo import UpdateOne

from gql_chat.platform import async_mock_bulk
from gql_chat.platform.versions import UnsupportedVersion
from gql_chat.store.embedded import open_embedded_client


async def test_many_collections_leave_one_layer_and_bulk_updates_work() -> None:
    client = open_embedded_client()
    for n in range(1200):
        client["test"][f"c{n}"]  # each wraps its collection (and used to wrap add_update)
    layers = 0
    add_update = BulkOperationBuilder.add_update
    while hasattr(add_update, "__wrapped__"):
        layers += 1
        add_update = add_update.__wrapped__
    assert layers <= 2  # ours, and at most one applied before the platform was installed
    collection = client["test"]["bulk"]
    await collection.insert_one({"_id": 1, "n": 0})
    await collection.bulk_write([UpdateOne({"_id": 1}, {"$set": {"n": 1}}, sort={"n": 1})])
    assert (await collection.find_one({"_id": 1}))["n"] == 1


def test_an_unchecked_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(async_mock_bulk, "distribution_version", lambda name: "0.2.0")
    with pytest.raises(UnsupportedVersion, match=r"pymongo-async-mock 0\.2\.0"):
        async_mock_bulk.require_supported_versions()
