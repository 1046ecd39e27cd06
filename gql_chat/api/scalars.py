"""`DateTime` in one form everywhere (`domain.clock.iso_utc`): Python's `isoformat` gave
`…:00+00:00` or `…:00.123000+00:00` depending on the value. Inputs still take any ISO 8601
form (a time without an offset is taken as UTC where it is read)."""

from __future__ import annotations

from datetime import datetime

from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

from gql_chat.domain.clock import iso_utc

DATETIME = ScalarDefinition(
    name="DateTime",
    description=(
        "Date and time, RFC 3339 in UTC with milliseconds, e.g. 2026-12-03T12:00:00.000Z. "
        "Inputs take any ISO 8601 date-time; one without an offset is read as UTC."
    ),
    specified_by_url=None,
    serialize=iso_utc,
    parse_value=DateTimeDefinition.parse_value,
    parse_literal=None,
    origin=datetime,
)
SCALAR_OVERRIDES = {datetime: DATETIME}
