"""Messages: a tree per conversation through `parent_id`, and what reports sum over them.

An assistant reply is kept while it streams. Its deltas are answer text (kept in `content`) or
reasoning text (kept in `reasoning`), numbered together by `seq`. `seq_ends[i]` says where
delta `i + 1` ends: at `content[seq_ends[i]]` when positive, at `reasoning[-seq_ends[i]]` when
negative (a delta is never empty, so no end is 0). Any suffix after a given `seq` can then be
replayed exactly, each delta with its kind (`MessageRecord.deltas_after`), from one array that
a save appends to."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from bson import ObjectId

_Number = TypeVar("_Number", int, float)


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


class FeedbackRating(StrEnum):
    UP = "UP"
    DOWN = "DOWN"


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the user said of a reply (thumbs up or down, and or a comment)."""

    rating: FeedbackRating | None
    comment: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delta:
    """One streamed piece of a reply: answer text, or the model's reasoning (`reasoning`)."""

    seq: int
    text: str
    reasoning: bool = False


def delta_end(end: int, reasoning: bool) -> int:
    """A delta's entry in `seq_ends`: where it ends in its own text, negative for reasoning."""
    return -end if reasoning else end


def text_lengths(seq_ends: Sequence[int], before: int) -> tuple[int, int]:
    """How long the answer and the reasoning are after the first `before` deltas: the last end
    of each kind among them (0 for a kind with none)."""
    answer = reasoning = None
    for index in range(min(before, len(seq_ends)) - 1, -1, -1):
        end = seq_ends[index]
        if end > 0 and answer is None:
            answer = end
        elif end < 0 and reasoning is None:
            reasoning = -end
        if answer is not None and reasoning is not None:
            break
    return answer or 0, reasoning or 0


def split_texts(deltas: Iterable[Delta]) -> tuple[str, str]:
    """The answer and the reasoning text of `deltas`, each joined in order."""
    answer: list[str] = []
    reasoning: list[str] = []
    for delta in deltas:
        (reasoning if delta.reasoning else answer).append(delta.text)
    return "".join(answer), "".join(reasoning)


def appended_ends(seq_ends: Sequence[int], deltas: Iterable[Delta]) -> list[int]:
    """The `seq_ends` entries of `deltas` appended after all of `seq_ends`."""
    answer, reasoning = text_lengths(seq_ends, len(seq_ends))
    ends = []
    for delta in deltas:
        if delta.reasoning:
            reasoning += len(delta.text)
            ends.append(delta_end(reasoning, True))
        else:
            answer += len(delta.text)
            ends.append(delta_end(answer, False))
    return ends


@dataclass(frozen=True, slots=True)
class UsageRecord:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    reasoning_tokens: int | None = None
    """Of the completion tokens, those the model spent reasoning (when the provider says)."""
    cost_estimated: bool = False
    """The provider reported no cost: `cost` is worked out from the model's prices."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def added_usage(earlier: UsageRecord | None, later: UsageRecord | None) -> UsageRecord | None:
    """The usage of two requests for one reply (a reply and its continuation)."""
    if earlier is None or later is None:
        return earlier or later
    return UsageRecord(
        prompt_tokens=earlier.prompt_tokens + later.prompt_tokens,
        completion_tokens=earlier.completion_tokens + later.completion_tokens,
        cost=_added(earlier.cost, later.cost),
        reasoning_tokens=_added(earlier.reasoning_tokens, later.reasoning_tokens),
        cost_estimated=earlier.cost_estimated or later.cost_estimated,
    )


def _added(earlier: _Number | None, later: _Number | None) -> _Number | None:
    if earlier is None or later is None:
        return earlier if later is None else later
    return earlier + later


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
    reasoning: str = ""
    """The model's reasoning before (or between) the answer's text; never sent back to it."""
    attachment_ids: tuple[ObjectId, ...] = ()
    """The files a user message carries, in the order sent."""
    finish_reason: str | None = None
    """Why the model stopped ("stop", "length", …), as the provider said; replies only."""
    first_token_ms: float | None = None
    total_ms: float | None = None
    feedback: Feedback | None = None
    started_at: datetime | None = None
    """When its latest generation started, for a reply continued after it ended."""

    @property
    def generating_since(self) -> datetime:
        return self.started_at or self.created_at

    @property
    def can_continue(self) -> bool:
        """A reply cut off by its length limit, stopped, or interrupted can be continued."""
        return self.role is MessageRole.ASSISTANT and (
            self.status in (MessageStatus.STOPPED, MessageStatus.INTERRUPTED)
            or (self.status is MessageStatus.COMPLETE and self.finish_reason == "length")
        )

    def deltas_after(self, after_seq: int) -> Iterator[Delta]:
        """Every stored delta after `after_seq`, lazily: constant work per delta after finding
        where the first one starts, so a replay costs what it sends."""
        ends = self.seq_ends
        first = max(after_seq, 0)
        answer_at, reasoning_at = text_lengths(ends, first)
        for index in range(first, len(ends)):
            end = ends[index]
            if end < 0:
                yield Delta(index + 1, self.reasoning[reasoning_at:-end], reasoning=True)
                reasoning_at = -end
            else:
                yield Delta(index + 1, self.content[answer_at:end])
                answer_at = end


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
    attachment_ids: tuple[ObjectId, ...] = ()


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


@dataclass(frozen=True, slots=True)
class SharedMessageRecord:
    """A message as a share link copied it (`domain/shares.py`): what its readers see."""

    position: int
    role: MessageRole
    content: str
    model: str | None
    created_at: datetime
    attachment_ids: tuple[ObjectId, ...] = ()
