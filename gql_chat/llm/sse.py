"""Server-sent events decoded straight from the response's bytes.

A streamed reply is one small event per token, so the cost per event matters: splitting the
bytes here skips httpx's text-decoding and line-splitting layers and `httpx-sse`'s own, each an
async generator step per chunk (about 15 µs of a chunk's 100 µs, measured on 40 streams). Only
what an OpenAI-compatible stream uses is kept: `data` fields, joined per event; comments and
the `event`, `id` and `retry` fields are read and ignored. `tests/llm/test_sse.py` fuzzes it
against httpx-sse and the WHATWG event-stream algorithm on the same bytes, cut anywhere.
"""

from __future__ import annotations

MAX_EVENT_BYTES = 1_048_576
"""The largest line, and the largest event (its data lines together), accepted: a reply's
events are a few hundred bytes, a usage event a few KB."""


class EventTooLarge(ValueError):
    """A line or an event over `MAX_EVENT_BYTES`: the stream is not one to keep reading."""


class SSEDecoder:
    """Feed it the body's chunks in order; it returns the data of each event they complete.

    Lines may end with CRLF, LF or CR (the format allows all three), and a line, an event or
    a CRLF may be split across chunks. Work is linear in the bytes fed: an unfinished line
    is kept in a growing buffer, joined to what follows only once a chunk ends it, and a line
    or event over `max_bytes` raises `EventTooLarge` (an unbounded line cost quadratic time:
    0.91 s of event loop)."""

    def __init__(self, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._pending = bytearray()
        self._data: list[bytes] = []
        self._data_bytes = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk and b"\r" not in chunk:
            # Nothing ends here: the unfinished line grows (amortised linear), and waits.
            self._pending += chunk
            if len(self._pending) > self.max_bytes:
                raise EventTooLarge(f"an event stream line over {self.max_bytes} bytes")
            return []
        if self._pending:
            self._pending += chunk
            lines = bytes(self._pending).splitlines(keepends=True)
            self._pending.clear()
        else:
            lines = chunk.splitlines(keepends=True)
        # A last line waits for more bytes when unfinished, or when it ends with a CR that may
        # be the first half of a CRLF; a lone CR (a blank line) can end the event at once,
        # since a LF after it would only be one more blank line.
        if lines and not lines[-1].endswith(b"\n") and lines[-1] != b"\r":
            self._pending += lines.pop()
            if len(self._pending) > self.max_bytes:
                raise EventTooLarge(f"an event stream line over {self.max_bytes} bytes")
        events: list[bytes] = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
                    self._data_bytes = 0
            elif line.startswith(b"data"):
                name, _, value = line.partition(b":")
                if name == b"data":
                    value = value.removeprefix(b" ")
                    self._data_bytes += len(value) + 1
                    if self._data_bytes > self.max_bytes:
                        raise EventTooLarge(f"an event over {self.max_bytes} bytes")
                    self._data.append(value)
        return events
