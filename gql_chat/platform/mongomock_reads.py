"""mongomock's per-document read work, without its general machinery where the common case
needs none, for the embedded store.

Every document a find returns went through three Python passes: the filter again (after the
hash index of `mongomock_indexes` picked it), the projection (which parsed the projection spec
again for every document, into fresh OrderedDicts, and copied every value with `copy.copy`,
which rebuilds an ObjectId from its pickle state), and the time-zone pass (which rebuilt every
dict and list once more). Reading a 60-message history for a prompt cost 3 ms, 50 µs per
message, on the event loop of every send.

`install()` replaces, for the common shapes only and with the same results:
- the filter of a query whose every condition is a top-level field equal to an ObjectId or a
  string (`matcher`): a stored value equal to it matches, one of another type or missing does
  not; an array (which may hold it) goes to mongomock's filter;
- the projection of a plain inclusion (top-level names to 1/True, `_id` to 0/1 or absent) into
  a plain dict, and the whole-document copy: the same keys in the same order, containers copied
  as mongomock copies them, immutable values (strings, numbers, ObjectIds, datetimes, bytes)
  shared instead of copied;
- the time-zone pass, whose result is the same with a type dispatch instead of three
  `isinstance` calls per value.
Any other shape runs mongomock's own code. It relies on mongomock's private
`Collection._copy_only_fields` and `helpers.make_datetime_timezone_aware_in_document`, so
`require_supported_versions` stops start-up on a version this was not checked against."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import mongomock
from bson import ObjectId
from mongomock import helpers as mongomock_helpers
from mongomock.collection import Collection
from mongomock.filtering import filter_applies

from gql_chat.platform.versions import UnsupportedVersion, require_versions

SUPPORTED_MONGOMOCK = ("4.3.",)
"""The versions whose private functions this module was checked against."""

_copy_only_fields: Callable[..., Any] = Collection._copy_only_fields
_filter: Callable[[Any, Any], bool] = filter_applies
_original_time_zone_pass: Callable[[Any], Any] = (
    mongomock_helpers.make_datetime_timezone_aware_in_document
)

_UTC: Any = getattr(mongomock_helpers, "utc", None)  # the time zone mongomock gives datetimes
IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, ObjectId, Decimal})
"""Values a copy may share with the stored document: nothing can change them in place."""
EXACT = (ObjectId, str)
"""Condition values compared exactly by MongoDB and by Python's `==` within their own type."""


def copy_value(value: Any) -> Any:
    """mongomock's `_copy_field` for a plain-dict container: lists and dicts copied, immutable
    values (and datetimes, which are immutable too) shared, anything else `copy.copy`."""
    kind = type(value)
    if kind in IMMUTABLE or kind is datetime:
        return value
    if kind is list:
        return [copy_value(item) for item in value]
    if kind is dict:
        return {key: copy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_value(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_value(item) for key, item in value.items()}
    return copy.copy(value)


def _plain_inclusion(fields: Mapping[str, Any]) -> bool:
    """Top-level names to 1/True, `_id` to anything mongomock accepts: what the fast path
    projects exactly as mongomock does."""
    for name, flag in fields.items():
        if name == "_id":
            continue
        if "." in name or name.startswith("$"):
            return False
        if not (flag is True or (type(flag) is int and flag == 1)):
            return False
    return True


def _copy_fields_fast(self: Any, doc: Any, fields: Any, container: Any) -> Any:
    if container is not dict or type(doc) is not dict:
        return _copy_only_fields(self, doc, fields, container)
    if fields is None:
        return copy_value(doc)
    if type(fields) is not dict or not fields or not _plain_inclusion(fields):
        return _copy_only_fields(self, doc, fields, container)
    if len(fields) == 1 and "_id" in fields:  # nothing but _id named: mongomock's own answer
        return _copy_only_fields(self, doc, fields, container)
    projected = {
        name: copy_value(value) for name, value in doc.items() if name != "_id" and name in fields
    }
    if fields.get("_id", 1) and "_id" in doc:
        projected["_id"] = doc["_id"]
    return projected


def time_zone_aware(value: Any) -> Any:
    """mongomock's pass giving every datetime UTC as its time zone (stored ones are naive)."""
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    if kind is dict:
        return {key: time_zone_aware(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [time_zone_aware(item) for item in value]
    if kind is datetime:
        return value.replace(tzinfo=_UTC)
    result: Any = _original_time_zone_pass(value)  # subclasses: mongomock's isinstance checks
    return result


def matcher(query: object) -> Callable[[Mapping[str, Any]], bool] | None:
    """A fast test of `query` against a stored document, when every condition is a top-level
    field equal to an ObjectId or a string; None for any other query (mongomock filters)."""
    if not isinstance(query, Mapping) or not query:
        return None
    conditions = list(query.items())
    for name, wanted in conditions:
        if not isinstance(name, str) or "." in name or name.startswith("$"):
            return None
        if type(wanted) not in (ObjectId, str):
            return None

    def matches(document: Mapping[str, Any]) -> bool:
        for name, wanted in conditions:
            value = document.get(name)
            if type(value) is type(wanted):
                if value != wanted:
                    return False
            elif isinstance(value, list | tuple):
                if not _filter({name: wanted}, document):
                    return False
            else:
                return False
        return True

    return matches


def require_supported_versions() -> None:
    """Stop start-up when mongomock is a version this module was not checked against."""
    require_versions(
        __name__,
        {"mongomock": SUPPORTED_MONGOMOCK},
        {"mongomock": mongomock.__version__},  # type: ignore[attr-defined]
    )
    if _UTC is None or not callable(_original_time_zone_pass):
        raise UnsupportedVersion("mongomock.helpers has no utc or time-zone pass")


def install() -> None:
    """Idempotent: the originals are kept from before the first install."""
    require_supported_versions()
    Collection._copy_only_fields = _copy_fields_fast  # type: ignore[method-assign]
    mongomock_helpers.make_datetime_timezone_aware_in_document = time_zone_aware
