"""`MessageRecord.deltas_after` is the replay primitive every follower that reconnects relies on:
whatever `after_seq` it resumes from, it must get exactly the text it has not seen, cut at the
same places the live stream cut it."""

from __future__ import annotations

from itertools import accumulate, pairwise

from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.clock import utc_now
from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus, UsageRecord

# Empty deltas are allowed: a provider may send a chunk with no text, and its end then equals
# the previous one.
deltas_strategy = st.lists(st.text(max_size=8), max_size=30)


def reply_of(deltas: list[str], status: MessageStatus = MessageStatus.STREAMING) -> MessageRecord:
    """A reply as the store keeps it: the text so far and where each delta ends in it."""
    now = utc_now()
    return MessageRecord(
        id=ObjectId(),
        owner_id=ObjectId(),
        conversation_id=ObjectId(),
        role=MessageRole.ASSISTANT,
        content="".join(deltas),
        status=status,
        model="m",
        parent_id=ObjectId(),
        seq=len(deltas),
        seq_ends=tuple(accumulate(len(d) for d in deltas)),
        usage=None,
        error_code=None,
        error_message=None,
        client_message_id=None,
        created_at=now,
        updated_at=now,
    )


SEEDED = settings(derandomize=True, deadline=None)
"""Hypothesis, deterministic: the same examples every run; no deadline on a busy machine."""


@SEEDED
@given(deltas=deltas_strategy)
def test_every_after_seq_replays_exactly_the_unseen_deltas(deltas: list[str]) -> None:
    """From every resume point (including before the start and past the end) the replay is the
    original deltas from there on, numbered from `after_seq + 1`, strictly increasing."""
    reply = reply_of(deltas)
    ends = reply.seq_ends
    for after_seq in range(-2, len(deltas) + 3):
        replayed = list(reply.deltas_after(after_seq))
        first = min(max(after_seq, 0), len(deltas))
        seqs = [seq for seq, _ in replayed]
        assert seqs == list(range(first + 1, len(deltas) + 1))
        assert all(a < b for a, b in pairwise(seqs))
        assert [text for _, text in replayed] == deltas[first:]
        already_seen = ends[first - 1] if first else 0
        assert "".join(text for _, text in replayed) == reply.content[already_seen:]


@SEEDED
@given(deltas=deltas_strategy, data=st.data())
def test_a_replay_joined_to_what_was_seen_is_the_whole_reply(
    deltas: list[str], data: st.DataObject
) -> None:
    """A follower that saw deltas 1..k live and then resumes after k ends up with the reply."""
    reply = reply_of(deltas)
    seen = data.draw(st.integers(min_value=0, max_value=len(deltas)))
    resumed = "".join(text for _, text in reply.deltas_after(seen))
    assert "".join(deltas[:seen]) + resumed == reply.content


def test_deltas_after_is_lazy() -> None:
    """A replay of a long reply costs what it sends: taking one delta does not cut them all."""
    reply = reply_of(["x"] * 100_000)
    replay = reply.deltas_after(99_998)
    assert iter(replay) is replay
    assert next(replay) == (99_999, "x")
    assert next(replay) == (100_000, "x")
    assert next(replay, None) is None


def test_a_reply_with_no_deltas_replays_nothing() -> None:
    reply = reply_of([], MessageStatus.PENDING)
    assert list(reply.deltas_after(0)) == []
    assert list(reply.deltas_after(5)) == []


def test_status_finality() -> None:
    """Followers stop waiting exactly on the final statuses."""
    unfinished = {MessageStatus.PENDING, MessageStatus.STREAMING}
    for status in MessageStatus:
        assert status.is_final is (status not in unfinished)


def test_usage_total_is_prompt_plus_completion() -> None:
    assert UsageRecord(prompt_tokens=7, completion_tokens=5).total_tokens == 12
    assert UsageRecord().total_tokens == 0
