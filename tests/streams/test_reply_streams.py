"""What a follower makes of a reply stream's entries: only what `RedisReplyStreams` writes is
believed (anything else in the key is ignored, and MongoDB fills the gap it leaves)."""

from __future__ import annotations

from bson import ObjectId

from gql_chat.domain.messages import Delta
from gql_chat.streams.reply_streams import StreamEnd, StreamPosition, _entry


def test_entries_are_read_by_their_id_and_fields() -> None:
    assert _entry("7-0", {b"t": "héllo".encode()}) == Delta(7, "héllo")
    assert _entry("7-0", {b"r": b"thinking"}) == Delta(7, "thinking", reasoning=True)
    assert _entry("7-0", {b"r": b""}) is None  # a delta is never empty
    assert _entry("8-0", {b"e": b"1"}) == StreamEnd()
    assert _entry("9-0", {b"x": b"no text"}) is None
    assert _entry("10-0", {b"t": b"\xff\xfe"}) is None  # not UTF-8


def test_a_position_only_moves_forward() -> None:
    position = StreamPosition.after(ObjectId(), 5)
    assert position.last_id == "5-0"
    position.skip_to(3)
    assert position.last_id == "5-0"
    position.skip_to(12)
    assert position.last_id == "12-0"
