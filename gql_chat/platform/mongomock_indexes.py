"""Hash indexes for mongomock: the lookups MongoDB gets from its indexes and mongomock lacks,
for the embedded store (`gql_chat.store.embedded`).

mongomock evaluates every query against every document of the collection, and checks unique
indexes on every write the same way. With a few thousand messages, reading one conversation's
history or saving a streaming reply's progress cost milliseconds, enough to saturate the event
loop at 50 concurrent replies. `install()` replaces nine private methods of mongomock's
`Collection` and `CollectionStore`; the patches keep MongoDB's semantics:

- a filter with a top-level `_id` (an ObjectId, or `$in` a list of them) reads those documents
  by key, then applies the rest of the filter to them;
- every top-level field of a declared index gets a hash index of its ObjectId and string values,
  so a filter with such a field at the top level (equal to one value, or `$in` a list of them)
  reads only the documents holding those values, then applies the whole filter to them;
- a write skips a partial unique index whose filter the document does not match: MongoDB does
  not index such a document, so it cannot conflict;
- an aggregation that starts with `$match` reads its documents through that filter (and so
  through the lookups above) instead of copying the whole collection first: a user's usage
  summary cost time in proportion to every user's messages, on the event loop; an inclusion
  `$project` right after it is the find's projection, so only those fields are copied (a usage
  summary copied every reply's text and deltas: 25-30 ms per long reply); and the find's
  results are taken as one list (mongomock's cursor copies the rest of its list at every
  document it yields: reading 50,000 documents took 8 s of copying).

TTL indexes: mongomock scans the whole collection for expired documents at every read and
write; the earliest expiry is kept as documents are stored and changed, and the scan runs only
once it has come (an audit-log insert cost its whole collection's size before).

A lookup may only ever over-select (a stale entry is dropped when the whole filter is applied
to the stored document); it must never miss a document, so the hash indexes follow every way
mongomock stores, changes or removes one. They rely on mongomock's private methods and
attributes (`_iter_documents`, `_ensure_uniques`, `_apply_update_*`, `_compute_results`,
`_documents`, `_rwlock`, `_remove_expired_documents`) and on pymongo-async-mock delegating to
them, so `require_supported_versions` stops start-up on a version this was not checked
against.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import mongomock
from bson import ObjectId
from mongomock import DuplicateKeyError
from mongomock import aggregate as mongomock_aggregate
from mongomock.collection import Collection, Cursor
from mongomock.filtering import filter_applies
from mongomock.helpers import get_value_by_dot, hashdict
from mongomock.store import CollectionStore
from mongomock.store import _get_min_datetime_from_value as min_datetime_of

from gql_chat.platform.mongomock_reads import matcher
from gql_chat.platform.versions import (
    UnsupportedVersion,
    distribution_version,
    require_versions,
)

SUPPORTED_MONGOMOCK = ("4.3.",)
SUPPORTED_PYMONGO_ASYNC_MOCK = ("0.1.",)
"""The versions whose private methods this module was checked against."""

# mongomock is untyped: what is used here, with the types it has.
_scan_all: Callable[[Any, Any], Iterator[dict[str, Any]]] = Collection._iter_documents
_apply_update_document: Callable[..., None] = Collection._apply_update_document
_apply_update_pipeline: Callable[..., None] = Collection._apply_update_pipeline
_store_document: Callable[[Any, Any, Any], None] = CollectionStore.__setitem__
_remove_document: Callable[[Any, Any], None] = CollectionStore.__delitem__
_drop: Callable[[Any], None] = CollectionStore.drop
_create_index: Callable[[Any, str, dict[str, Any]], None] = CollectionStore.create_index
_expire_all: Callable[[Any], None] = CollectionStore._remove_expired_documents
RESCAN_AFTER = timedelta(seconds=1)
"""When a scan left a document that looked due (a value mongomock does not expire), the next
scan waits this long rather than running at every access."""
_matches: Callable[[Any, Any], bool] = filter_applies
_value_at: Callable[[Any, str], Any] = get_value_by_dot

KEYED = (ObjectId, str)
"""The values a hash index keeps: the types our lookups use, compared exactly by both MongoDB and
Python (numbers and datetimes are not: 1 == 1.0, and naive vs aware datetimes)."""


def _wanted(condition: object) -> list[Hashable] | None:
    """The values a field's condition pins it to: `value` or `{"$in": [values]}`."""
    if isinstance(condition, KEYED):
        return [condition]
    if isinstance(condition, Mapping) and condition.keys() == {"$in"}:
        candidates = condition["$in"]
        if isinstance(candidates, list | tuple) and all(isinstance(c, KEYED) for c in candidates):
            return list(dict.fromkeys(candidates))
    return None


def wanted_ids(query: object) -> list[Hashable] | None:
    """The ObjectIds a filter pins `_id` to, or None when it does not (a full scan then)."""
    if not isinstance(query, Mapping) or "_id" not in query:
        return None
    wanted = _wanted(query["_id"])
    if wanted is None or not all(isinstance(w, ObjectId) for w in wanted):
        return None
    return wanted


class FieldIndex:
    """One field's values to the ids of the documents holding them, in insertion order.

    An array may hold any value, so documents whose field is an array are always candidates."""

    def __init__(self) -> None:
        self.by_value: dict[Hashable, dict[Hashable, None]] = {}
        self.arrays: dict[Hashable, None] = {}

    def add(self, key: Hashable, value: object) -> None:
        if isinstance(value, KEYED):
            self.by_value.setdefault(value, {})[key] = None
        elif isinstance(value, list | tuple):
            self.arrays[key] = None

    def remove(self, key: Hashable, value: object) -> None:
        if isinstance(value, KEYED):
            holders = self.by_value.get(value)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self.by_value[value]
        elif isinstance(value, list | tuple):
            self.arrays.pop(key, None)

    def count(self, values: list[Hashable]) -> int:
        """At least as many as `candidates` returns, without building the list."""
        return sum(len(self.by_value.get(value, ())) for value in values) + len(self.arrays)

    def candidates(self, values: list[Hashable]) -> list[Hashable]:
        found: dict[Hashable, None] = {}
        for value in values:
            found.update(self.by_value.get(value, {}))
        found.update(self.arrays)
        return list(found)


def field_indexes(store: Any) -> dict[str, FieldIndex]:
    """The hash indexes of one mongomock collection store, by field."""
    indexes: dict[str, FieldIndex] | None = getattr(store, "gql_chat_field_indexes", None)
    if indexes is None:
        indexes = {}
        store.gql_chat_field_indexes = indexes
    return indexes


def _indexed_values(store: Any, document: Mapping[str, Any]) -> dict[str, object]:
    return {field: document.get(field) for field in field_indexes(store)}


def candidate_ids(store: Any, query: object) -> list[Hashable] | None:
    """The fewest candidates any hashed field of the filter allows, or None (a full scan).
    `_id` filters are read by key before this is asked (`_iter_documents`)."""
    if not isinstance(query, Mapping):
        return None
    best: tuple[int, FieldIndex, list[Hashable]] | None = None
    for field, index in field_indexes(store).items():
        values = _wanted(query.get(field))
        if values is not None:
            count = index.count(values)
            if best is None or count < best[0]:
                best = (count, index, values)
    return None if best is None else best[1].candidates(best[2])


def _iter_documents(self: Any, query: Any) -> Iterator[dict[str, Any]]:
    store = self._store
    ids = wanted_ids(query)
    if ids is not None:
        # Read by key, so `_id` holds already; mongomock would test each document against
        # every id of an `$in` again (quadratic in the ids asked for).
        query = {name: condition for name, condition in query.items() if name != "_id"}
    else:
        ids = candidate_ids(store, query)
        if ids is None:
            return _scan_all(self, query)
    store._remove_expired_documents()  # as a scan would: TTL indexes still apply
    with store._rwlock.reader():
        stored = store._documents
        documents = [stored[i] for i in ids if i in stored]
    matches = matcher(query) or partial(_matches, query)
    return (document for document in documents if matches(document))


def _ensure_uniques(self: Any, new_data: dict[str, Any]) -> None:
    """mongomock's check (the new document is already stored), minus partial indexes whose
    filter the document does not match, and with the index's fields at the top level of the
    filter so that it is a hashed lookup."""
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
            query["$and"] = [partial]
        if len(list(self._iter_documents(query))) > 1:
            raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)


# --- keeping the hash indexes in step with every write ------------------------------------------


def _create_index_hashing_fields(self: Any, index_name: str, index_dict: dict[str, Any]) -> None:
    _create_index(self, index_name, index_dict)
    _forget_expiries(self)
    indexes = field_indexes(self)
    for field, _ in index_dict["key"]:
        if field == "_id" or "." in field or field in indexes:
            continue
        index = FieldIndex()
        for key, document in self._documents.items():
            index.add(key, document.get(field))
        indexes[field] = index


def _expiry_of(store: Any, document: Mapping[str, Any]) -> datetime | None:
    """The earliest time (naive UTC, as `mongomock.utcnow()`) one of the store's TTL indexes
    could expire `document`; None if none ever will."""
    earliest = None
    for index in store._ttl_indexes.values():
        try:
            seconds = int(index["expireAfterSeconds"])
        except (TypeError, ValueError):
            continue
        if len(index["key"]) != 1:
            continue
        value = min_datetime_of(document.get(next(iter(index["key"]))[0]))  # type: ignore[no-untyped-call]
        if not isinstance(value, datetime) or value == datetime.max:
            continue
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        due = value + timedelta(seconds=seconds)
        earliest = due if earliest is None or due < earliest else earliest
    return earliest


def _note_expiry(store: Any, document: Mapping[str, Any]) -> None:
    """A stored or changed document may be due before every other."""
    if not store._ttl_indexes or not hasattr(store, "gql_chat_next_expiry"):
        return  # no TTL index, or the next scan has to look anyway
    due = _expiry_of(store, document)
    if due is not None and (store.gql_chat_next_expiry is None or due < store.gql_chat_next_expiry):
        store.gql_chat_next_expiry = due


def _remove_expired_documents(self: Any) -> None:
    """mongomock's TTL scan of the whole collection, at every read and write, only when a
    document may be due (the earliest expiry is kept as documents are stored and changed): a
    growing collection with a TTL index (the audit log) made each insert cost its whole size."""
    if not self._ttl_indexes:
        return
    now: datetime = mongomock.utcnow()  # type: ignore[attr-defined]
    known = hasattr(self, "gql_chat_next_expiry")
    if known and (self.gql_chat_next_expiry is None or now < self.gql_chat_next_expiry):
        return
    _expire_all(self)
    with self._rwlock.reader():
        dues = [_expiry_of(self, document) for document in self._documents.values()]
    next_expiry = min((due for due in dues if due is not None), default=None)
    if next_expiry is not None and next_expiry <= now:
        next_expiry = now + RESCAN_AFTER
    self.gql_chat_next_expiry = next_expiry


def _forget_expiries(store: Any) -> None:
    """A new TTL index, or a dropped collection: the next scan works the earliest out again."""
    if hasattr(store, "gql_chat_next_expiry"):
        del store.gql_chat_next_expiry


def _store_document_indexed(self: Any, key: Hashable, document: dict[str, Any]) -> None:
    """Inserts, and the rollback of a failed update (the snapshot goes back in)."""
    previous = self._documents.get(key)
    _store_document(self, key, document)
    _note_expiry(self, document)
    for field, index in field_indexes(self).items():
        if previous is not None:
            index.remove(key, previous.get(field))
        index.add(key, document.get(field))


def _remove_document_indexed(self: Any, key: Hashable) -> None:
    """Deletes, and documents a TTL index expires."""
    document = self._documents.get(key)
    _remove_document(self, key)
    if document is not None:
        for field, index in field_indexes(self).items():
            index.remove(key, document.get(field))


def _drop_indexed(self: Any) -> None:
    _drop(self)
    _forget_expiries(self)
    field_indexes(self).clear()


def _store_key(document_id: Any) -> Hashable:
    """How mongomock keys a document: a sub-document `_id` as a hashable dict."""
    return hashdict(document_id) if isinstance(document_id, dict) else document_id


def _reindexing(apply: Callable[..., None]) -> Callable[..., None]:
    """mongomock updates a stored document in place: move it between values where it changed."""

    def apply_and_reindex(self: Any, document: dict[str, Any], *args: Any) -> None:
        store = self._store
        before = _indexed_values(store, document)
        apply(self, document, *args)
        key = _store_key(document.get("_id"))
        if store._documents.get(key) is not document:
            return  # an upsert: indexed when it is stored
        _note_expiry(store, document)
        for field, index in field_indexes(store).items():
            value = document.get(field)
            if value != before[field] or type(value) is not type(before[field]):
                index.remove(key, before[field])
                index.add(key, value)

    return apply_and_reindex


def _aggregate(
    self: Any, pipeline: list[dict[str, Any]], session: Any = None, **unused: Any
) -> Any:
    stages = list(pipeline)
    query: dict[str, Any] = {}
    projection: dict[str, Any] | None = None
    if stages and set(stages[0]) == {"$match"}:
        query = stages.pop(0)["$match"]
        if stages and _is_inclusion(stages[0]):
            projection = stages.pop(0)["$project"]
    documents = self.find(query, projection)._compute_results()
    process: Callable[..., Any] = mongomock_aggregate.process_pipeline
    return process(documents, self.database, stages, session)


def _is_inclusion(stage: dict[str, Any]) -> bool:
    """A `$project` stage that only names top-level fields to keep."""
    fields = stage.get("$project") if set(stage) == {"$project"} else None
    return (
        isinstance(fields, dict)
        and bool(fields)
        and all(
            isinstance(name, str) and not name.startswith("$") and "." not in name
            for name in fields
        )
        and all(value is True or (type(value) is int and value == 1) for value in fields.values())
    )


def require_supported_versions() -> None:
    """Stop start-up when mongomock or pymongo-async-mock is a version this module was not
    checked against."""
    require_versions(
        __name__,
        {"mongomock": SUPPORTED_MONGOMOCK, "pymongo-async-mock": SUPPORTED_PYMONGO_ASYNC_MOCK},
        {
            "mongomock": mongomock.__version__,  # type: ignore[attr-defined]
            "pymongo-async-mock": distribution_version("pymongo-async-mock"),
        },
    )
    for cls, name in (
        (Collection, "_iter_documents"),
        (Collection, "_ensure_uniques"),
        (Collection, "_apply_update_document"),
        (Collection, "_apply_update_pipeline"),
        (Collection, "aggregate"),
        (Cursor, "_compute_results"),
        (CollectionStore, "__setitem__"),
        (CollectionStore, "__delitem__"),
        (CollectionStore, "drop"),
        (CollectionStore, "create_index"),
        (CollectionStore, "_remove_expired_documents"),
    ):
        if not callable(getattr(cls, name, None)):
            raise UnsupportedVersion(f"mongomock's {cls.__name__} has no {name}()")


def install() -> None:
    """Put the hash indexes on mongomock's classes. Idempotent (the originals are kept from
    before the first install); it must run before any embedded store is opened, since a
    collection binds its methods when it is created."""
    require_supported_versions()
    Collection._iter_documents = _iter_documents  # type: ignore[method-assign]
    Collection._ensure_uniques = _ensure_uniques  # type: ignore[method-assign]
    Collection._apply_update_document = _reindexing(_apply_update_document)  # type: ignore[method-assign]
    Collection._apply_update_pipeline = _reindexing(_apply_update_pipeline)  # type: ignore[method-assign]
    Collection.aggregate = _aggregate  # type: ignore[method-assign]
    CollectionStore.__setitem__ = _store_document_indexed  # type: ignore[method-assign]
    CollectionStore.__delitem__ = _remove_document_indexed  # type: ignore[method-assign]
    CollectionStore.drop = _drop_indexed  # type: ignore[method-assign]
    CollectionStore.create_index = _create_index_hashing_fields  # type: ignore[method-assign]
    CollectionStore._remove_expired_documents = _remove_expired_documents  # type: ignore[method-assign]
