"""The embedded store: mongomock behind PyMongo's async API, plus two lookups that MongoDB gets
from its indexes and mongomock lacks.

mongomock evaluates every query against every document of the collection and checks unique
indexes on every write the same way. With a few thousand messages, the update by `_id` that
saves a streaming reply's progress cost milliseconds, enough to saturate the event loop at 50
concurrent replies. The two patches keep MongoDB's semantics:

- a filter with a top-level `_id` (an ObjectId, or `$in` a list of them) reads those documents
  by key, then applies the whole filter to them;
- a write skips a partial unique index whose filter the document does not match: MongoDB does
  not index such a document, so it cannot conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bson import ObjectId
from mongomock import DuplicateKeyError
from mongomock.collection import Collection
from mongomock.filtering import filter_applies
from mongomock.helpers import get_value_by_dot
from pymongo_async_mock import AsyncMongoMockClient

# mongomock is untyped: its three functions used here, with the types they have.
_scan_all: Callable[[Any, Any], Iterator[dict[str, Any]]] = Collection._iter_documents
_matches: Callable[[Any, Any], bool] = filter_applies
_value_at: Callable[[Any, str], Any] = get_value_by_dot


def wanted_ids(query: object) -> list[ObjectId] | None:
    """The ObjectIds a filter pins `_id` to, or None when it does not (a full scan then)."""
    if not isinstance(query, Mapping) or "_id" not in query:
        return None
    wanted = query["_id"]
    if isinstance(wanted, ObjectId):
        return [wanted]
    if isinstance(wanted, Mapping) and wanted.keys() == {"$in"}:
        candidates = wanted["$in"]
        if isinstance(candidates, list | tuple) and all(
            isinstance(c, ObjectId) for c in candidates
        ):
            return list(dict.fromkeys(candidates))
    return None


def _iter_documents(self: Any, query: Any) -> Iterator[dict[str, Any]]:
    ids = wanted_ids(query)
    if ids is None:
        return _scan_all(self, query)
    store = self._store
    store._remove_expired_documents()  # as a scan would: TTL indexes still apply
    with store._rwlock.reader():
        documents = [store._documents[i] for i in ids if i in store._documents]
    return (document for document in documents if _matches(query, document))


def _ensure_uniques(self: Any, new_data: dict[str, Any]) -> None:
    """mongomock's check (the new document is already stored), minus partial indexes whose
    filter the document does not match."""
    for index in self._store.indexes.values():
        if not index.get("unique"):
            continue
        partial = index.get("partialFilterExpression")
        if partial is not None and not _matches(partial, new_data):
            continue
        query: dict[str, Any] = {}
        for key, _ in index["key"]:
            try:
                query[key] = _value_at(new_data, key)
            except KeyError:
                query[key] = None
        if index.get("sparse") and set(query.values()) == {None}:
            continue
        if partial is not None:
            query = {"$and": [partial, query]}
        if len(list(self._iter_documents(query))) > 1:
            raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)


def open_embedded_client() -> AsyncMongoMockClient:
    """A new in-memory store (the patches go on mongomock's class before any collection binds
    its methods)."""
    Collection._iter_documents = _iter_documents  # type: ignore[method-assign]
    Collection._ensure_uniques = _ensure_uniques  # type: ignore[method-assign]
    return AsyncMongoMockClient(tz_aware=True)
