"""Which models a user may use: a list of patterns, where `*` stands for any run of characters
(`openai/*`, `*:free`, `anthropic/claude-*`) and everything else must match exactly."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_PATTERNS = 100
MAX_PATTERN_LENGTH = 200
_PATTERN = re.compile(r"[^\s,]+")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class ModelPatterns:
    patterns: tuple[str, ...]

    def allows(self, model: str) -> bool:
        return any(matches(pattern, model) for pattern in self.patterns)


EVERY_MODEL = ModelPatterns(("*",))


def matches(pattern: str, model: str) -> bool:
    """Glob matching with `*` only, in at most len(pattern) * len(model) steps (no regex: a
    pattern like `*a*a*a*b` cannot make it backtrack exponentially)."""
    p = m = 0
    star = -1
    star_m = 0
    while m < len(model):
        if p < len(pattern) and pattern[p] == "*":
            star, star_m = p, m
            p += 1
        elif p < len(pattern) and pattern[p] == model[m]:
            p += 1
            m += 1
        elif star >= 0:
            p = star + 1
            star_m += 1
            m = star_m
        else:
            return False
    return all(char == "*" for char in pattern[p:])


def check_patterns(patterns: Iterable[str]) -> ModelPatterns:
    """The patterns, deduplicated in their order. Raises ValueError saying what is wrong."""
    kept: list[str] = []
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern) or len(pattern) > MAX_PATTERN_LENGTH:
            raise ValueError(
                f"each pattern must be 1 to {MAX_PATTERN_LENGTH} characters without spaces or "
                f"commas (got {pattern[:40]!r})"
            )
        if pattern not in kept:
            kept.append(pattern)
        if len(kept) > MAX_PATTERNS:
            raise ValueError(f"at most {MAX_PATTERNS} patterns")
    return ModelPatterns(tuple(kept))


def parse_patterns(text: str) -> ModelPatterns:
    """A setting's value: patterns separated by commas or spaces (`openai/*, *:free`); an empty
    value allows no model."""
    return check_patterns(part for part in _SEPARATORS.split(text.strip()) if part)
