"""mongomock's `$group` without its sort, for the embedded store.

mongomock groups by sorting the documents on their group key with its Python BSON comparator,
then walking runs of equal keys: most of an aggregation's time once the documents are read
(the admins' usage per user over 50,000 messages took 20 s, 15 of them sorting). `install()`
replaces the `$group` handler with one that buckets the documents by key in one pass, and
accumulates each bucket with mongomock's own `_accumulate_group`.

Semantics kept: keys are grouped when Python's `==` holds, as mongomock's runs of equal keys
are (so 1 and 1.0 are one group; a bool is never grouped with a number, as their BSON types
sort apart); a falsy `_id` makes one group with `_id` None; a missing key is None. Groups come
out in the order their first document came in, not in key order (MongoDB promises no order),
and each group's documents keep their order (a `$push` after a `$sort` is sorted, as on
MongoDB; mongomock's sort could reorder keys it holds equal, such as 1 and 1.0).
It relies on `mongomock.aggregate`'s `_PIPELINE_HANDLERS`, `_parse_expression` and
`_accumulate_group`, so `require_supported_versions` stops start-up on a version this was not
checked against."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import mongomock
from mongomock import aggregate as mongomock_aggregate

from gql_chat.platform.versions import UnsupportedVersion, require_versions

SUPPORTED_MONGOMOCK = ("4.3.",)
"""The versions whose `$group` handler this module was checked against."""

# mongomock is untyped: what is used here, with the types it has.
_handlers: dict[str, Any] = getattr(mongomock_aggregate, "_PIPELINE_HANDLERS", {})
_evaluate: Callable[..., Any] | None = getattr(mongomock_aggregate, "_parse_expression", None)
_accumulate: Callable[[dict[str, Any], list[Any]], dict[str, Any]] | None = getattr(
    mongomock_aggregate, "_accumulate_group", None
)


def hashable_key(value: Any) -> Hashable:
    """A key that is equal for values Python's `==` holds equal (dicts whatever their order,
    lists element by element), with bools apart from numbers."""
    if isinstance(value, dict):
        return ("dict", frozenset((name, hashable_key(v)) for name, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(hashable_key(v) for v in value))
    if isinstance(value, bool):
        return ("bool", value)
    try:
        hash(value)
    except TypeError:
        return ("repr", type(value).__name__, repr(value))
    return ("value", value)


def group_stage(
    in_collection: Iterable[dict[str, Any]], unused_database: Any, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """mongomock's `_handle_group_stage`, bucketing by key instead of sorting."""
    assert _evaluate is not None  # checked at install
    assert _accumulate is not None
    documents = list(in_collection)
    key_expression = options["_id"]
    buckets: dict[Hashable, tuple[Any, list[dict[str, Any]]]] = {}
    if not key_expression:
        buckets[None] = (None, documents)
    else:
        for document in documents:
            try:
                key = _evaluate(key_expression, document, ignore_missing_keys=True)
            except KeyError:
                key = None
            buckets.setdefault(hashable_key(key), (key, []))[1].append(document)
    grouped = []
    for key, members in buckets.values():
        accumulated = _accumulate(options, members)
        accumulated["_id"] = key
        grouped.append(accumulated)
    return grouped


def require_supported_versions() -> None:
    require_versions(
        __name__,
        {"mongomock": SUPPORTED_MONGOMOCK},
        {"mongomock": mongomock.__version__},  # type: ignore[attr-defined]
    )
    if "$group" not in _handlers or not callable(_evaluate) or not callable(_accumulate):
        raise UnsupportedVersion(
            "mongomock.aggregate has no _PIPELINE_HANDLERS['$group'], _parse_expression() or "
            "_accumulate_group()"
        )


def install() -> None:
    """Idempotent."""
    require_supported_versions()
    _handlers["$group"] = group_stage
