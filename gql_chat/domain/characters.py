"""The characters user text may not hold: control characters (and lone surrogates; line and
paragraph separators in one-line names). Checked on input, removed from imported files.

Cc is exactly U+0000-U+001F and U+007F-U+009F (a stability guarantee of the Unicode standard),
Cs exactly U+D800-U+DFFF; a character class is ~100x faster than asking `unicodedata` per
character, and a test checks these classes against `unicodedata.category`."""

from __future__ import annotations

import re

NAME_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
PROSE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""Prose (messages) may hold tab, LF and CR."""


def forbidden_character(value: str, *, prose: bool = False) -> str | None:
    """The first character `value` may not contain, if any (`prose` allows tab, LF and CR)."""
    found = (PROSE_FORBIDDEN if prose else NAME_FORBIDDEN).search(value)
    return found.group() if found else None
