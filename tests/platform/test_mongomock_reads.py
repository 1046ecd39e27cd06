"""The fast read paths of `platform/mongomock_reads.py` give what mongomock's own code gives, on
generated documents, projections and filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mongomock
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.platform import install, mongomock_reads

install()

IDS = [ObjectId() for _ in range(3)]
COLLECTION: Any = mongomock.MongoClient().db.test
NAMES = ["a", "b", "c", "_id"]
scalars = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(["x", "y", ""]),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=3),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(st.sampled_from(NAMES[:3]), inner, max_size=3),
    ),
    max_leaves=8,
)
documents = st.dictionaries(st.sampled_from(NAMES), values, max_size=4)
flags = st.sampled_from([1, True, 0, False, 2, "x"])
projections = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from([*NAMES, "a.b", "$x"]), flags, max_size=3),
)


def shares_a_container(copied: Any, stored: Any) -> bool:
    """Whether a list or dict of the copy is one of the stored document's."""
    if isinstance(copied, list | dict) and copied is stored:
        return True
    if isinstance(copied, dict) and isinstance(stored, dict):
        return any(shares_a_container(copied[k], stored.get(k)) for k in copied if k in stored)
    if isinstance(copied, list) and isinstance(stored, list | tuple):
        return any(shares_a_container(c, s) for c, s in zip(copied, stored, strict=False))
    return False


def outcome(project: Any, document: dict[str, Any], fields: Any) -> tuple[str, Any]:
    try:
        return "ok", project(COLLECTION, document, fields, dict)
    except Exception as exc:  # mongomock refuses some projections: both must refuse alike
        return "error", type(exc)


def same(left: Any, right: Any) -> bool:
    """Equal, with the same key order and the same time zones."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and list(left) == list(right)
            and all(same(left[k], right[k]) for k in left)
        )
    if isinstance(left, list | tuple):
        return (
            type(left) is type(right)
            and len(left) == len(right)
            and all(same(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, datetime):
        return isinstance(right, datetime) and left == right and left.tzinfo is right.tzinfo
    return type(left) is type(right) and (left == right or left != left)


@settings(max_examples=400, deadline=None)
@given(documents, projections)
def test_projection_is_mongomocks(document: dict[str, Any], fields: Any) -> None:
    expected = outcome(mongomock_reads._copy_only_fields, document, _copied(fields))
    found = outcome(mongomock_reads._copy_fields_fast, document, _copied(fields))
    assert expected[0] == found[0]
    if found[0] == "ok":
        assert same(found[1], expected[1])
        # Beyond `_id`, which mongomock itself hands out as stored, nothing is shared.
        found_fields = {k: v for k, v in found[1].items() if k != "_id"}
        assert not shares_a_container(found_fields, document)
    else:
        assert found[1] is expected[1]


def _copied(fields: Any) -> Any:
    return dict(fields) if isinstance(fields, dict) else fields


@settings(max_examples=300, deadline=None)
@given(values)
def test_time_zone_pass_is_mongomocks(value: Any) -> None:
    assert same(
        mongomock_reads.time_zone_aware(value), mongomock_reads._original_time_zone_pass(value)
    )


conditions = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.one_of(st.sampled_from(IDS), st.sampled_from(["x", "y"])),
    min_size=1,
    max_size=3,
)
stored_values = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(["x", "y"]),
    st.none(),
    st.integers(0, 2),
    st.lists(st.one_of(st.sampled_from(IDS), st.sampled_from(["x", "y"])), max_size=3),
    st.dictionaries(st.just("a"), st.sampled_from(IDS), max_size=1),
)


@settings(max_examples=500, deadline=None)
@given(conditions, st.dictionaries(st.sampled_from(["a", "b", "c"]), stored_values, max_size=3))
def test_matcher_is_mongomocks_filter(query: dict[str, Any], document: dict[str, Any]) -> None:
    matches = mongomock_reads.matcher(query)
    assert matches is not None
    assert matches(document) == mongomock_reads._filter(query, document)


def test_other_filters_are_left_to_mongomock() -> None:
    queries: list[dict[str, Any]] = [
        {},
        {"a": 1},
        {"a.b": "x"},
        {"$or": []},
        {"a": {"$in": IDS}},
        {"a": None},
    ]
    for query in queries:
        assert mongomock_reads.matcher(query) is None
