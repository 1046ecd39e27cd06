"""Records hold aware UTC at millisecond precision: the precision a BSON date keeps, so a value
read back from the store compares equal to the value written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import bson
from bson.codec_options import CodecOptions
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.clock import as_utc, utc_now


def test_utc_now_is_aware_utc_in_whole_milliseconds() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    now = utc_now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0
    assert before <= now <= after


def test_utc_now_survives_a_bson_round_trip() -> None:
    now = utc_now()
    decoded: dict[str, object] = bson.decode(
        bson.encode({"t": now}), codec_options=CodecOptions(tz_aware=True)
    )
    assert decoded["t"] == now


def test_naive_values_are_taken_as_utc() -> None:
    """The driver without `tz_aware` gives naive UTC."""
    naive = datetime(2024, 5, 6, 7, 8, 9, 123000)
    value = as_utc(naive)
    assert value.tzinfo is UTC
    assert value.replace(tzinfo=None) == naive


SEEDED = settings(derandomize=True, deadline=None)
"""Hypothesis, deterministic: the same examples every run; no deadline on a busy machine."""


@SEEDED
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
    )
)
def test_aware_values_keep_their_instant(moment: datetime) -> None:
    """Compared through the offset: Python never calls a time in a DST fold equal to a UTC one."""
    value = as_utc(moment)
    offset = moment.utcoffset()
    assert offset is not None
    assert value.tzinfo is UTC
    assert value.replace(tzinfo=None) == moment.replace(tzinfo=None) - offset


def test_offsets_are_converted_not_replaced() -> None:
    tokyo = datetime(2024, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    assert as_utc(tokyo) == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert as_utc(tokyo).hour == 0
