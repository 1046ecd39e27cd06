"""Messages: a tree per conversation through `parent_id`, and what reports sum over them.

An assistant reply is kept while it streams: `content` holds the text so far and `seq_ends[i]`
is where delta `i + 1` ends in it, so any suffix after a given `seq` can be replayed exactly
(`MessageRecord.deltas_after`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bson import ObjectId


class MessageRole(StrEnum):
    USER = "USER"
    ASSISTANT = "ASSISTANT"
    SYSTEM = "SYSTEM"


class MessageStatus(StrEnum):
    PENDING = "PENDING"
    STREAMING = "STREAMING"
    COMPLETE = "COMPLETE"
    STOPPED = "STOPPED"
    ERROR = "ERROR"
    INTERRUPTED = "INTERRUPTED"

    @property
    def is_final(self) -> bool:
        return self not in (MessageStatus.PENDING, MessageStatus.STREAMING)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: ObjectId
    owner_id: ObjectId
    conversation_id: ObjectId
    role: MessageRole
    content: str
    status: MessageStatus
    model: str | None
    parent_id: ObjectId | None
    seq: int
    seq_ends: tuple[int, ...]
    usage: UsageRecord | None
    error_code: str | None
    error_message: str | None
    client_message_id: str | None
    created_at: datetime
    updated_at: datetime

    def deltas_after(self, after_seq: int) -> Iterator[tuple[int, str]]:
        """(seq, text) of every stored delta after `after_seq`, lazily: constant work per
        delta, so a replay costs what it sends."""
        ends = self.seq_ends
        content = self.content
        first = max(after_seq, 0)
        start = ends[first - 1] if 0 < first <= len(ends) else 0
        for index in range(first, len(ends)):
            end = ends[index]
            yield index + 1, content[start:end]
            start = end


@dataclass(frozen=True, slots=True)
class MessageNode:
    """The shape of the tree without the text: enough for paths, counts and siblings."""

    id: ObjectId
    conversation_id: ObjectId
    parent_id: ObjectId | None


@dataclass(frozen=True, slots=True)
class ThreadTurn:
    """A message as a prompt needs it, with its place in the tree."""

    id: ObjectId
    parent_id: ObjectId | None
    role: MessageRole
    content: str


class UsageGroup(StrEnum):
    MODEL = "MODEL"
    DAY = "DAY"
    CONVERSATION = "CONVERSATION"


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
