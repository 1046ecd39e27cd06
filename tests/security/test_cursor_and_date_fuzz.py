"""Property-based: any `conversations(after:)` cursor and any `usageSummary` date strings are
answered with data or a coded client error, never INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gql_chat.app import create_app
from tests.conftest import make_settings, serve
from tests.support import GraphQLClient, sign_up

CONVERSATIONS = "query($a: String) { conversations(first: 5, after: $a) { totalCount } }"
USAGE = (
    "query($f: DateTime, $t: DateTime) "
    "{ usageSummary(groupBy: DAY, from: $f, to: $t) { key messages } }"
)
OFFSETS = st.sampled_from(["", "Z", "+00:00", "+23:59", "-23:59", "+05:30", "-12:00"])
DATES = st.one_of(
    st.builds(
        lambda d, o: d.isoformat() + o,
        st.datetimes(),
        OFFSETS,
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2020-01-01",
            "2020-01-01T00:00:00",
            "x",
            "",
        ]
    ),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
IDS = st.one_of(
    st.just("0" * 24),
    st.text(alphabet="0123456789abcdef", min_size=24, max_size=24),
    st.sampled_from(["zz", "abcdefghijkl", "", "0" * 23]),
    st.text(max_size=30),
    JSON_VALUES,
)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CURSORS = st.one_of(
    st.builds(lambda a, i: _cursor({"a": a, "i": i}), DATES | JSON_VALUES, IDS),
    JSON_VALUES.map(_cursor),
    st.text(max_size=40),
)


class Target:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def codes(self, query: str, variables: dict[str, Any]) -> list[str | None]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code < 500, response.text
        errors = response.json().get("errors") or []
        return [error.get("extensions", {}).get("code") for error in errors]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve(create_app(make_settings())) as http:
        user = await sign_up(GraphQLClient(http))
        await user.ok("mutation { createConversation(input: {}) { id } }")
        yield Target(http, user.token)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(cursor=CURSORS)
async def test_any_cursor_is_data_or_bad_user_input(target: Target, cursor: str) -> None:
    codes = await target.codes(CONVERSATIONS, {"a": cursor})
    assert set(codes) <= {"BAD_USER_INPUT"}, (cursor, codes)


@FUZZ
@given(start=DATES | st.none(), end=DATES | st.none())
async def test_any_dates_are_data_or_client_errors(
    target: Target, start: str | None, end: str | None
) -> None:
    codes = await target.codes(USAGE, {"f": start, "t": end})
    # Unparsable DateTime strings fail variable coercion (no code, as any request error).
    assert "INTERNAL_SERVER_ERROR" not in codes, (start, end, codes)
    assert set(codes) <= {"BAD_USER_INPUT", None}, (start, end, codes)


async def test_the_adversarial_cursors_and_dates(target: Target) -> None:
    for cursor in (
        _cursor({"a": "2020-01-01T00:00:00+00:00", "i": "zz"}),
        _cursor({"a": "9999-12-31T23:59:59-23:59", "i": "0" * 24}),
        _cursor({"a": "0001-01-01T00:00:00+23:59", "i": "0" * 24}),
    ):
        assert await target.codes(CONVERSATIONS, {"a": cursor}) == ["BAD_USER_INPUT"]
    assert await target.codes(USAGE, {"f": "0001-01-01T00:00:00+23:59", "t": None}) == [
        "BAD_USER_INPUT"
    ]
    # A time without an offset is UTC, so it compares with one that has an offset.
    assert (
        await target.codes(USAGE, {"f": "2020-01-01T00:00:00", "t": "2030-01-01T00:00:00Z"}) == []
    )
    assert await target.codes(USAGE, {"f": "2030-01-01T00:00:00", "t": "2020-01-01T00:00:00Z"}) == [
        "BAD_USER_INPUT"
    ]
