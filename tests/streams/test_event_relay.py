"""User events as they travel between instances: what one publishes, another delivers exactly
(kind, ids, time), and a message that is not an event is ignored, never a crash."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from gql_chat.streams.user_events import (
    UserEvent,
    UserEventBus,
    UserEventKind,
    event_from_message,
    event_to_message,
)

IDS = st.none() | st.builds(ObjectId)
EVENTS = st.builds(
    UserEvent,
    kind=st.sampled_from(UserEventKind),
    conversation_id=IDS,
    message_id=IDS,
    folder_id=IDS,
    llm_config_id=IDS,
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@given(st.builds(ObjectId), EVENTS)
def test_an_event_arrives_as_it_was_published(owner: ObjectId, event: UserEvent) -> None:
    assert event_from_message(event_to_message(owner, event)) == (owner, event)


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"owner": "nope", "kind": "CONVERSATION_CREATED", "at": "2026-01-01T00:00:00+00:00"},
        {"owner": str(ObjectId()), "kind": "NOPE", "at": "2026-01-01T00:00:00+00:00"},
        {"owner": str(ObjectId()), "kind": "CONVERSATION_CREATED", "at": "yesterday"},
        {"owner": str(ObjectId()), "kind": "CONVERSATION_CREATED", "at": 5},
        {
            "owner": str(ObjectId()),
            "kind": "CONVERSATION_CREATED",
            "at": "2026-01-01T00:00:00+00:00",
            "conversation_id": "x",
        },
    ],
)
def test_a_message_that_is_not_an_event_is_ignored(message: dict[str, Any]) -> None:
    assert event_from_message(message) is None


async def test_publish_relays_and_deliver_does_not() -> None:
    relayed: list[tuple[ObjectId, UserEvent]] = []
    bus = UserEventBus(relay=lambda owner, event: relayed.append((owner, event)))
    owner = ObjectId()
    subscription = bus.subscribe(owner)
    first = UserEvent(UserEventKind.FOLDER_CREATED, folder_id=ObjectId())
    second = UserEvent(UserEventKind.FOLDER_DELETED, folder_id=ObjectId())
    receiving = asyncio.ensure_future(subscription.__anext__())
    await asyncio.sleep(0)  # the subscription registers when it is first iterated
    bus.publish(owner, first)
    assert await receiving == first
    bus.deliver(owner, second)  # heard from another instance: not sent back out
    assert await subscription.__anext__() == second
    assert relayed == [(owner, first)]
    await subscription.aclose()  # type: ignore[attr-defined]
