"""The SSE decoder on the framings the format allows, fed whole and byte by byte, and fuzzed
against httpx-sse and the WHATWG event-stream algorithm."""

from __future__ import annotations

import itertools
import re

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent
from hypothesis import given, settings
from hypothesis import strategies as st

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


# Fuzz: the same byte streams, cut anywhere, through ours and through httpx-sse (the locked
# library, end to end: httpx's text decoding, its line splitter, its decoder), and through the
# WHATWG event-stream algorithm written out below.

FIELD_NAMES = ["data", "data", "data", "event", "id", "retry", "", "dat", "datum", "DATA", "data "]
SEPARATORS = ["", ":", ": ", ":  ", "::"]
ENDINGS = ["\n", "\r", "\r\n"]
VALUE_CHARACTERS = st.sampled_from(
    # with what str.splitlines() would split on but the format does not, and a BOM mid-line
    [*'ab :{"é😀', "\x00", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff"]
)
LINES = st.one_of(
    st.tuples(
        st.sampled_from(FIELD_NAMES),
        st.sampled_from(SEPARATORS),
        st.text(VALUE_CHARACTERS, max_size=8),
    ).map("".join),
    st.just(""),  # blank: ends an event (or dispatches nothing)
    st.text(VALUE_CHARACTERS, max_size=8).map(lambda text: ":" + text),  # a comment
    st.sampled_from(["retry: 3000", "retry: x", "id: 7", "id", "event: message"]),
)
STREAMS = st.tuples(
    st.sampled_from(["", "\ufeff"]),  # a leading BOM
    st.lists(st.tuples(LINES, st.sampled_from(ENDINGS)), max_size=30).map(
        lambda lines: "".join(line + ending for line, ending in lines)
    ),
    st.sampled_from(["", "\n", "\r", "\r\n", "\n\r", "\r\r"]),  # how the stream ends
).map("".join)


def whatwg_events(stream: bytes, *, strip_bom: bool) -> list[str]:
    """The data of each event the HTML standard's event-stream interpretation dispatches
    (html.spec.whatwg.org, "Interpreting an event stream"): UTF-8 decoding, one leading BOM
    stripped, lines ended by CRLF, LF or CR, a `data` field appends its value and a LF, a blank
    line dispatches when the data buffer is not empty (minus its last LF), an unfinished event
    at the end is discarded."""
    text = stream.decode("utf-8", "replace")
    if strip_bom:
        text = text.removeprefix("\ufeff")
    events, data = [], ""
    lines = re.split("\r\n|\r|\n", text)
    for line in lines[:-1]:  # the last piece has no line ending: never processed
        if not line:
            if data:
                events.append(data.removesuffix("\n"))
            data = ""
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data += value + "\n"
    return events


def httpx_sse_events(chunks: list[bytes]) -> list[ServerSentEvent]:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    return list(EventSource(response).iter_sse())


def ours(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    return [event.decode() for chunk in chunks for event in decoder.feed(chunk)]


def cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=500, deadline=None)
@given(text=STREAMS, data=st.data())
def test_ours_decodes_as_httpx_sse_and_the_whatwg_algorithm_do(
    text: str, data: st.DataObject
) -> None:
    stream = text.encode()
    chunks = cut(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    events = ours(chunks)
    # httpx-sse also dispatches events without data (an `id`, `event` or `retry` alone), which
    # the standard does not (and ours need not: a reply is in `data`); an empty data field is
    # an event with data "" in all three, so only events with data are compared with httpx-sse.
    assert [e for e in events if e] == [e.data for e in httpx_sse_events(chunks) if e.data]
    # The standard strips a leading BOM; httpx decodes an event stream as "utf-8", not
    # "utf-8-sig", so neither httpx-sse nor ours does (test below).
    assert events == whatwg_events(stream, strip_bom=False)
    assert events == ours([stream])  # however the stream is cut


def test_a_leading_bom_is_kept_as_httpx_sse_keeps_it() -> None:
    """A deviation from the standard that ours shares with httpx-sse: the BOM stays part of the
    first line's field name, so that field is ignored. OpenRouter sends no BOM."""
    stream = "\ufeffdata: first\n\ndata: second\n\n".encode()
    assert ours([stream]) == ["second"]
    assert [e.data for e in httpx_sse_events([stream])] == ["second"]
    assert whatwg_events(stream, strip_bom=True) == ["first", "second"]
