"""`MessageRecord.deltas_after` is the replay primitive every follower that reconnects relies on:
whatever `after_seq` it resumes from, it must get exactly the text it has not seen, cut at the
same places the live stream cut it."""

from __future__ import annotations

from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.clock import utc_now
from gql_chat.domain.messages import (
    Delta,
    MessageRecord,
    MessageRole,
    MessageStatus,
    UsageRecord,
    appended_ends,
    text_lengths,
)

# Empty answer deltas are allowed (a provider may send a chunk with no text: its end equals the
# previous one); reasoning deltas never are empty (the provider client drops them), so that the
# sign of every end tells its kind.
deltas_strategy = st.lists(
    st.one_of(
        st.tuples(st.text(max_size=8), st.just(False)),
        st.tuples(st.text(min_size=1, max_size=8), st.just(True)),
    ),
    max_size=30,
)
Pieces = list[tuple[str, bool]]


def reply_of(pieces: Pieces, status: MessageStatus = MessageStatus.STREAMING) -> MessageRecord:
    """A reply as the store keeps it: the answer and the reasoning so far, and where each delta
    ends in its own text (negative for reasoning)."""
    now = utc_now()
    ends, answer, reasoning = [], "", ""
    for text, is_reasoning in pieces:
        if is_reasoning:
            reasoning += text
            ends.append(-len(reasoning))
        else:
            answer += text
            ends.append(len(answer))
    return MessageRecord(
        id=ObjectId(),
        owner_id=ObjectId(),
        conversation_id=ObjectId(),
        role=MessageRole.ASSISTANT,
        content=answer,
        status=status,
        model="m",
        parent_id=ObjectId(),
        seq=len(pieces),
        seq_ends=tuple(ends),
        usage=None,
        error_code=None,
        error_message=None,
        client_message_id=None,
        created_at=now,
        updated_at=now,
        reasoning=reasoning,
    )


SEEDED = settings(derandomize=True, deadline=None)
"""Hypothesis, deterministic: the same examples every run; no deadline on a busy machine."""


@SEEDED
@given(pieces=deltas_strategy)
def test_every_after_seq_replays_exactly_the_unseen_deltas(pieces: Pieces) -> None:
    """From every resume point (including before the start and past the end) the replay is the
    original deltas from there on, each with its kind, numbered from `after_seq + 1`."""
    reply = reply_of(pieces)
    for after_seq in range(-2, len(pieces) + 3):
        replayed = list(reply.deltas_after(after_seq))
        first = min(max(after_seq, 0), len(pieces))
        assert [d.seq for d in replayed] == list(range(first + 1, len(pieces) + 1))
        assert [(d.text, d.reasoning) for d in replayed] == pieces[first:]


@SEEDED
@given(pieces=deltas_strategy, data=st.data())
def test_a_replay_joined_to_what_was_seen_is_the_whole_reply(
    pieces: Pieces, data: st.DataObject
) -> None:
    """A follower that saw deltas 1..k live and then resumes after k ends up with the answer
    and the reasoning, each whole."""
    reply = reply_of(pieces)
    seen = data.draw(st.integers(min_value=0, max_value=len(pieces)))
    resumed = list(reply.deltas_after(seen))
    shown = [Delta(i + 1, text, kind) for i, (text, kind) in enumerate(pieces[:seen])] + resumed
    assert "".join(d.text for d in shown if not d.reasoning) == reply.content
    assert "".join(d.text for d in shown if d.reasoning) == reply.reasoning


@SEEDED
@given(saved=deltas_strategy, more=deltas_strategy)
def test_appended_ends_continue_each_text_where_it_stopped(saved: Pieces, more: Pieces) -> None:
    """What a save (or the sweep of a dead instance's reply) appends reads back as the reply
    with every delta, saved before or appended."""
    before = reply_of(saved)
    added = [Delta(len(saved) + i + 1, text, kind) for i, (text, kind) in enumerate(more)]
    ends = (*before.seq_ends, *appended_ends(before.seq_ends, added))
    assert ends == reply_of(saved + more).seq_ends
    assert text_lengths(ends, len(saved)) == (len(before.content), len(before.reasoning))


def test_deltas_after_is_lazy() -> None:
    """A replay of a long reply costs what it sends: taking one delta does not cut them all."""
    reply = reply_of([("x", False)] * 100_000)
    replay = reply.deltas_after(99_998)
    assert iter(replay) is replay
    assert next(replay) == Delta(99_999, "x")
    assert next(replay) == Delta(100_000, "x")
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
