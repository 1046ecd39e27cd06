"""Decoding an export a conversation at a time.

One `json.loads` (or `orjson.loads`) of a 40 MB export holds the GIL for about 0.4 s, and so
the event loop, even when it runs in a worker thread. A top-level array is decoded here element
by element instead: each call holds the GIL for one conversation's worth, and the loop gets its
turn between any two. Anything else (one conversation object) is decoded whole."""

from __future__ import annotations

import json
import re

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def decode(data: bytes, max_items: int) -> object:
    """The document; a top-level array is cut short (`ValueError`) past `max_items`, before
    the rest is decoded. Raises `ValueError` (`JSONDecodeError`, `UnicodeDecodeError`) for
    what is not JSON."""
    text = data.decode("utf-8-sig")
    index = _skip(text, 0)
    if not text.startswith("[", index):
        return json.loads(text)
    items: list[object] = []
    index = _skip(text, index + 1)
    if text.startswith("]", index):
        return _ended(text, index + 1, items)
    while True:
        item, index = _DECODER.raw_decode(text, index)
        items.append(item)
        if len(items) > max_items:
            raise ValueError(
                f"The file holds more than {max_items} conversations; at most {max_items} "
                "per import."
            )
        index = _skip(text, index)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
        elif text.startswith("]", index):
            return _ended(text, index + 1, items)
        else:
            raise json.JSONDecodeError("Expecting ',' or ']'", text, index)


def _skip(text: str, index: int) -> int:
    found = _SPACE.match(text, index)
    return found.end() if found else index


def _ended(text: str, index: int, items: list[object]) -> list[object]:
    if _skip(text, index) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip(text, index))
    return items
