"""The view's own body reader, on its own: behind `BodySizeLimitMiddleware` (always, in the app)
a client that leaves is reported before the view hears of it, so that branch is checked here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from gql_chat.api.view import read_body


def receiver(messages: list[Message]) -> Receive:
    pending = iter(messages)

    async def receive() -> Message:
        return next(pending)

    return receive


@given(st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=40))
async def test_a_body_in_any_number_of_chunks_is_read_whole(
    chunks: list[bytes], last: bytes
) -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    messages.append({"type": "http.request", "body": last})
    assert await read_body(receiver(messages)) == b"".join([*chunks, last])


async def test_a_message_without_a_body_is_an_empty_chunk() -> None:
    assert await read_body(receiver([{"type": "http.request"}])) == b""


async def test_a_client_that_leaves_is_starlettes_client_disconnect() -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    with pytest.raises(ClientDisconnect):
        await read_body(receiver(messages))
