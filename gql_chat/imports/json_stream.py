"""Decoding an export a little at a time.

One `json.loads` (or `orjson.loads`) of a 40 MB export holds the GIL for about 0.4 s, and so
the event loop, even when it runs in a worker thread. Here the outer containers (down to
`WALKED_DEPTH`) are walked in Python, and only the values inside them are handed to the C
decoder: each call holds the GIL for about one message's worth, and the loop gets its turn
between any two. A top-level array can also be read element by element (`elements`), so that a
file's conversations are decoded, read and dropped one at a time."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

WALKED_DEPTH = 3
"""Containers this shallow are walked here (a file's list, a conversation, its messages or
mapping); deeper values (each message) are decoded whole."""

MAX_ENTRIES = 50_000
"""Entries of one walked container: more than a conversation's messages may number (10,000) or
a ChatGPT mapping holds for them; a file of millions of tiny values fails early instead of
decoding them all (and freeing them all at once, which holds the GIL: 0.14 s for 6 million)."""

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def decode(data: bytes, max_items: int, max_entries: int = MAX_ENTRIES) -> object:
    """The whole document. A top-level array longer than `max_items`, or a walked container
    of more than `max_entries`, raises `ValueError` before the rest is decoded; so does what
    is not JSON (`JSONDecodeError`, `UnicodeDecodeError`) or nests deeper than the decoder
    follows."""
    values = elements(data, max_items, max_entries)
    if values is not None:
        return list(values)
    reader = _Reader(data, max_entries)
    value = reader.value(0)
    reader.end()
    return value


def elements(
    data: bytes, max_items: int, max_entries: int = MAX_ENTRIES
) -> Iterator[object] | None:
    """A top-level array's elements, each decoded when it is asked for (raising `ValueError`
    as `decode` does, when it is reached); None when the document is no array."""
    reader = _Reader(data, max_entries)
    reader.skip()
    if not reader.at_char("["):
        return None
    return _counted(reader, max_items)


def _counted(reader: _Reader, max_items: int) -> Iterator[object]:
    for count, value in enumerate(reader.array(1, counted=False), start=1):
        if count > max_items:
            raise ValueError(
                f"The file holds more than {max_items} conversations; at most {max_items} "
                "per import."
            )
        yield value
    reader.end()


class _Reader:
    def __init__(self, data: bytes, max_entries: int) -> None:
        self.text = data.decode("utf-8-sig")
        self.at = 0
        self.max_entries = max_entries

    def skip(self) -> None:
        found = _SPACE.match(self.text, self.at)
        self.at = found.end() if found else self.at

    def at_char(self, char: str) -> bool:
        return self.text.startswith(char, self.at)

    def value(self, depth: int) -> object:
        self.skip()
        if depth < WALKED_DEPTH and self.at_char("["):
            return list(self.array(depth + 1))
        if depth < WALKED_DEPTH and self.at_char("{"):
            return self.object(depth + 1)
        try:
            value, self.at = _DECODER.raw_decode(self.text, self.at)
        except RecursionError:
            raise ValueError("The file nests JSON deeper than it can be read.") from None
        return value

    def array(self, depth: int, *, counted: bool = True) -> Iterator[object]:
        """The elements of the array at the reader (it stands on `[`)."""
        self.at += 1
        self.skip()
        if self.at_char("]"):
            self.at += 1
            return
        for count in itertools.count(1):
            if counted and count > self.max_entries:
                raise self.too_long()
            yield self.value(depth)
            self.expect_next("]")
            if self.at_char("]"):
                self.at += 1
                return
            self.at += 1  # the comma

    def object(self, depth: int) -> dict[str, object]:
        """The object at the reader (it stands on `{`)."""
        found: dict[str, object] = {}
        self.at += 1
        self.skip()
        if self.at_char("}"):
            self.at += 1
            return found
        while True:
            if len(found) >= self.max_entries:
                raise self.too_long()
            self.skip()
            if not self.at_char('"'):
                raise self.error("Expecting property name enclosed in double quotes")
            key, self.at = _DECODER.raw_decode(self.text, self.at)
            self.skip()
            if not self.at_char(":"):
                raise self.error("Expecting ':' delimiter")
            self.at += 1
            found[key] = self.value(depth)
            self.expect_next("}")
            if self.at_char("}"):
                self.at += 1
                return found
            self.at += 1  # the comma

    def expect_next(self, closing: str) -> None:
        self.skip()
        if not (self.at_char(",") or self.at_char(closing)):
            raise self.error(f"Expecting ',' or '{closing}'")

    def end(self) -> None:
        self.skip()
        if self.at != len(self.text):
            raise self.error("Extra data")

    def too_long(self) -> ValueError:
        return ValueError(
            f"The file holds a list or an object of more than {self.max_entries:,} entries "
            "(a conversation or a message with more than any export has)."
        )

    def error(self, message: str) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, self.at)
