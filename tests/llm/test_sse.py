"""The SSE decoder on the framings the format allows, fed whole and byte by byte."""

from __future__ import annotations

import pytest

from gql_chat.llm.sse import SSEDecoder


def decode(stream: bytes, *, bytewise: bool) -> list[bytes]:
    decoder = SSEDecoder()
    if not bytewise:
        return decoder.feed(stream)
    return [event for i in range(len(stream)) for event in decoder.feed(stream[i : i + 1])]


@pytest.mark.parametrize("bytewise", [False, True])
@pytest.mark.parametrize(
    ("stream", "events"),
    [
        (b'data: {"a":1}\n\ndata: [DONE]\n\n', [b'{"a":1}', b"[DONE]"]),
        (b"data: one\r\n\r\ndata: two\r\rdata: three\n\n", [b"one", b"two", b"three"]),
        (b"data: first\ndata: second\n\n", [b"first\nsecond"]),
        (b"data: a\r\ndata: b\r\n\r\n", [b"a\nb"]),  # CRLF split anywhere keeps one event
        (b": OPENROUTER PROCESSING\n\ndata: x\n\n", [b"x"]),  # comments dispatch nothing
        (b"event: message\nid: 7\nretry: 10\ndata:x\n\n", [b"x"]),  # one space is optional
        (b"data\n\ndata:  two spaces\n\n", [b"", b" two spaces"]),
        (b"datum: no\ndata: yes\n\n", [b"yes"]),
        (b"data: never finished\n", []),  # no blank line: not an event
    ],
)
def test_events(stream: bytes, events: list[bytes], bytewise: bool) -> None:
    assert decode(stream, bytewise=bytewise) == events


def test_an_event_is_returned_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [b"a"]
    assert decoder.feed(b"data: b\r") == []  # a CRLF may still be coming
    assert decoder.feed(b"\n\r") == [b"b"]  # a lone CR blank line ends the event at once
    assert decoder.feed(b"\n") == []
