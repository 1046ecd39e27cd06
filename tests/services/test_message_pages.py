"""`MessageService.page`: Relay cursor maths over the active path (a list of message ids).
Checked against a brute-force reading of the Relay algorithm for random paths and arguments, and
for exact `hasNextPage`/`hasPreviousPage`: a client pages until they say there is no more."""

from __future__ import annotations

import base64
import random
from typing import cast

import orjson
import pytest
from bson import ObjectId

from gql_chat.domain.messages import MessageRecord, MessageRole, MessageStatus
from gql_chat.domain.pages import Page
from gql_chat.errors import BadUserInput
from gql_chat.services.cluster import Cluster
from gql_chat.services.generation import GenerationRunner
from gql_chat.services.messages import MessageService
from gql_chat.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from gql_chat.store.cursors import encode_cursor
from gql_chat.store.database import Database
from gql_chat.store.messages import MessageStore

OWNER = ObjectId()


class FakeMessages:
    """`get_many` over a dict, as the store answers it: the ids that exist, in the given order.
    Records every window read so a test can check a page reads only its window."""

    def __init__(self) -> None:
        self.records: dict[ObjectId, MessageRecord] = {}
        self.reads: list[list[ObjectId]] = []

    def add_path(self, length: int) -> list[ObjectId]:
        conversation_id = ObjectId()
        path: list[ObjectId] = []
        for i in range(length):
            record = MessageStore.draft(
                OWNER,
                conversation_id,
                role=MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT,
                content=f"m{i}",
                status=MessageStatus.COMPLETE,
                parent_id=path[-1] if path else None,
            )
            self.records[record.id] = record
            path.append(record.id)
        return path

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[MessageRecord]:
        self.reads.append(list(ids))
        return [
            self.records[i]
            for i in ids
            if i in self.records and self.records[i].owner_id == owner_id
        ]


class FakeDatabase:
    def __init__(self) -> None:
        self.messages = FakeMessages()
        self.usage = None


def make_service() -> tuple[MessageService, FakeMessages]:
    database = FakeDatabase()
    # `page` reads through `database.messages` only; the runner and cluster are for `stop`.
    service = MessageService(
        cast(Database, database), cast(GenerationRunner, object()), cast(Cluster, object())
    )
    return service, database.messages


def cursor_of(message_id: ObjectId) -> str:
    return encode_cursor({"m": str(message_id)})


def expected_window(
    length: int,
    after: int | None,
    before: int | None,
    first: int | None,
    last: int | None,
) -> list[int]:
    """The Relay spec's algorithm, literally: narrow by the cursors, then take first, then last."""
    edges = list(range(length))
    if after is not None:
        edges = [i for i in edges if i > after]
    if before is not None:
        edges = [i for i in edges if i < before]
    if first is None and last is None:
        first = DEFAULT_PAGE_SIZE
    if first is not None:
        edges = edges[:first]
    if last is not None:
        edges = edges[max(len(edges) - last, 0) :]
    return edges


async def page_of(
    service: MessageService,
    path: list[ObjectId],
    *,
    first: int | None = None,
    after: int | None = None,
    last: int | None = None,
    before: int | None = None,
) -> Page[MessageRecord]:
    return await service.page(
        OWNER,
        path,
        first=first,
        after=None if after is None else cursor_of(path[after]),
        last=last,
        before=None if before is None else cursor_of(path[before]),
    )


def positions(page: Page[MessageRecord], path: list[ObjectId]) -> list[int]:
    return [path.index(record.id) for _, record in page.items]


@pytest.mark.parametrize("seed", range(6))
async def test_pages_match_a_brute_force_reading_of_the_spec(seed: int) -> None:
    rng = random.Random(seed)
    service, store = make_service()
    for _ in range(150):
        path = store.add_path(rng.choice([0, 1, 2, 5, 20, 21, 60, 130]))
        length = len(path)

        def maybe_index(length: int = length) -> int | None:
            return rng.randrange(length) if length and rng.random() < 0.5 else None

        def maybe_count() -> int | None:
            return rng.choice([0, 1, 3, 20, 100]) if rng.random() < 0.5 else None

        after, before, first, last = maybe_index(), maybe_index(), maybe_count(), maybe_count()
        if first is not None and last is not None:
            with pytest.raises(BadUserInput):
                await page_of(service, path, first=first, after=after, last=last, before=before)
            continue
        page = await page_of(service, path, first=first, after=after, last=last, before=before)
        window = expected_window(length, after, before, first, last)
        assert positions(page, path) == window, (length, after, before, first, last)
        assert page.total_count == length
        if window:
            assert page.has_next_page == (window[-1] < length - 1)
            assert page.has_previous_page == (window[0] > 0)
            assert store.reads[-1] == [path[i] for i in window]  # only the window is read


async def test_paging_forward_visits_every_message_once_then_stops() -> None:
    service, store = make_service()
    path = store.add_path(47)
    seen: list[int] = []
    after: int | None = None
    for _ in range(10):
        page = await page_of(service, path, first=10, after=after)
        seen += positions(page, path)
        assert page.has_previous_page == (after is not None)
        if not page.has_next_page:
            break
        after = path.index(page.items[-1][1].id)
    assert seen == list(range(47))
    assert len(page.items) == 7


async def test_paging_backward_visits_every_message_once_then_stops() -> None:
    service, store = make_service()
    path = store.add_path(47)
    seen: list[int] = []
    before: int | None = None
    for _ in range(10):
        page = await page_of(service, path, last=10, before=before)
        seen = positions(page, path) + seen
        assert page.has_next_page == (before is not None)
        if not page.has_previous_page:
            break
        before = path.index(page.items[0][1].id)
    assert seen == list(range(47))


async def test_the_returned_cursors_resume_exactly_after_their_message() -> None:
    service, store = make_service()
    path = store.add_path(5)
    page = await service.page(OWNER, path, first=2, after=None, last=None, before=None)
    cursor, record = page.items[-1]
    assert record.id == path[1]
    following = await service.page(OWNER, path, first=2, after=cursor, last=None, before=None)
    assert [r.id for _, r in following.items] == path[2:4]


async def test_edge_pages() -> None:
    service, store = make_service()
    empty = await page_of(service, [])
    assert (empty.items, empty.has_next_page, empty.has_previous_page, empty.total_count) == (
        [],
        False,
        False,
        0,
    )
    path = store.add_path(30)
    default = await page_of(service, path)
    assert positions(default, path) == list(range(DEFAULT_PAGE_SIZE))
    assert default.has_next_page
    assert not default.has_previous_page
    nothing = await page_of(service, path, first=0)
    assert nothing.items == []
    assert nothing.has_next_page
    assert not nothing.has_previous_page
    at_the_end = await page_of(service, path, first=5, after=29)
    assert at_the_end.items == []
    assert not at_the_end.has_next_page
    assert at_the_end.has_previous_page
    whole = await page_of(service, path, first=MAX_PAGE_SIZE)
    assert positions(whole, path) == list(range(30))
    assert not whole.has_next_page
    assert not whole.has_previous_page
    between = await page_of(service, path, after=3, before=7)
    assert positions(between, path) == [4, 5, 6]
    assert between.has_next_page
    assert between.has_previous_page


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "",
    "!!!not base64!!!",
    b64(b"not json"),
    b64(b"\xff\xfe"),
    b64(orjson.dumps([1, 2])),
    b64(orjson.dumps("m")),
    b64(orjson.dumps({})),
    b64(orjson.dumps({"m": None})),
    b64(orjson.dumps({"m": 12})),
    b64(orjson.dumps({"m": "zz"})),
    b64(orjson.dumps({"m": {"$oid": "0" * 24}})),
    cursor_of(ObjectId()),  # a well-formed id that is not on this path
    encode_cursor({"u": "2024-01-01", "i": str(ObjectId())}),  # another list's cursor
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize("field", ["after", "before"])
async def test_bad_cursors_are_bad_user_input_naming_their_argument(
    cursor: str, field: str
) -> None:
    service, store = make_service()
    path = store.add_path(3)
    with pytest.raises(BadUserInput) as caught:
        await service.page(
            OWNER,
            path,
            first=None,
            last=None,
            after=cursor if field == "after" else None,
            before=cursor if field == "before" else None,
        )
    assert caught.value.field == field
    assert store.reads == []  # refused before any read


async def test_a_cursor_from_another_conversations_path_is_refused() -> None:
    service, store = make_service()
    one, other = store.add_path(3), store.add_path(3)
    with pytest.raises(BadUserInput):
        await service.page(OWNER, one, first=1, after=cursor_of(other[0]), last=None, before=None)
    with pytest.raises(BadUserInput):
        await service.page(OWNER, one, first=None, after=None, last=1, before=cursor_of(other[2]))


@pytest.mark.parametrize(
    ("field", "value"), [("first", -1), ("first", 101), ("last", -1), ("last", 101)]
)
async def test_page_sizes_out_of_range_are_bad_user_input(field: str, value: int) -> None:
    service, store = make_service()
    path = store.add_path(3)
    with pytest.raises(BadUserInput) as caught:
        await service.page(
            OWNER,
            path,
            first=value if field == "first" else None,
            last=value if field == "last" else None,
            after=None,
            before=None,
        )
    assert caught.value.field == field
