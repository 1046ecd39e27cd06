"""`read_now`: a list resolver's whole batch read at once, through the request's loader cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from strawberry.dataloader import DataLoader

from gql_chat.api.loaders import read_now


class Reads:
    """A batch function that records what it was asked for."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.failing = failing or set()
        self.called = asyncio.Event()
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, keys: Sequence[str]) -> list[str | BaseException]:
        self.batches.append(list(keys))
        self.called.set()
        await self.open.wait()
        return [ValueError(key) if key in self.failing else key.upper() for key in keys]


def _held() -> tuple[Reads, DataLoader[str, str]]:
    """A loader whose batches wait until `reads.open` is set."""
    reads = Reads()
    reads.open.clear()
    return reads, DataLoader(load_fn=reads)


async def test_nothing_to_read_reads_nothing() -> None:
    reads = Reads()
    assert await read_now(DataLoader(load_fn=reads), [None, None]) == {}
    assert reads.batches == []


async def test_one_read_for_the_missing_ids_primed_for_later_loads() -> None:
    reads = Reads()
    loader = DataLoader(load_fn=reads)
    assert await loader.load("a") == "A"
    found = await read_now(loader, ["b", None, "a", "c", "b"])
    assert found == {"b": "B", "a": "A", "c": "C"}
    assert reads.batches == [["a"], ["b", "c"]]  # "a" came from the cache
    assert await loader.load_many(["c", "b"]) == ["C", "B"]
    assert reads.batches == [["a"], ["b", "c"]]  # primed: no third read


async def test_an_id_still_loading_elsewhere_is_waited_for() -> None:
    reads, loader = _held()
    pending = asyncio.ensure_future(loader.load("a"))
    async with asyncio.timeout(5):
        await reads.called.wait()  # its batch has started, and waits
        reading = asyncio.ensure_future(read_now(loader, ["a", "b"]))
        reads.called.clear()
        await reads.called.wait()  # the read of "b" alone
        reads.open.set()
        assert await reading == {"a": "A", "b": "B"}
        assert await pending == "A"
    assert reads.batches == [["a"], ["b"]]


async def test_a_lookup_during_the_read_waits_for_it() -> None:
    reads, loader = _held()
    reading = asyncio.ensure_future(read_now(loader, ["a"]))
    async with asyncio.timeout(5):
        await reads.called.wait()
        looking = asyncio.ensure_future(loader.load("a"))
        await asyncio.sleep(0.01)  # a batch of its own would have been dispatched by now
        reads.open.set()
        assert await reading == {"a": "A"}
        assert await looking == "A"
    assert reads.batches == [["a"]]


async def test_a_cancelled_read_leaves_the_ids_to_be_read_again() -> None:
    reads, loader = _held()
    reading = asyncio.ensure_future(read_now(loader, ["a"]))
    async with asyncio.timeout(5):
        await reads.called.wait()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        reads.open.set()
        assert await loader.load("a") == "A"
    assert reads.batches == [["a"], ["a"]]


async def test_without_a_cache_every_id_is_read() -> None:
    reads = Reads()
    loader = DataLoader(load_fn=reads, cache=False)
    assert await read_now(loader, ["a"]) == {"a": "A"}
    assert await read_now(loader, ["a"]) == {"a": "A"}
    assert reads.batches == [["a"], ["a"]]


async def test_a_failed_id_raises_as_a_load_would() -> None:
    loader = DataLoader(load_fn=Reads(failing={"b"}))
    with pytest.raises(ValueError, match="b"):
        await read_now(loader, ["a", "b"])
    with pytest.raises(ValueError, match="b"):
        await loader.load("b")  # a load on its own fails alike (and is cached failed)
    with pytest.raises(ValueError, match="b"):
        await read_now(loader, ["b"])  # from the cache, as a load would


async def test_a_failed_batch_fails_every_id_as_a_load_would() -> None:
    async def broken(keys: Sequence[str]) -> list[str]:
        raise ConnectionError("down")

    loader = DataLoader(load_fn=broken)
    with pytest.raises(ConnectionError):
        await read_now(loader, ["a", "b"])
    with pytest.raises(ConnectionError):
        await loader.load("b")  # cached failed, as after a failed `load_many`
