"""The embedded store's analytics run in a worker thread: an aggregation that met a document
the event loop changed meanwhile is run again; any other failure is not hidden."""

from __future__ import annotations

from typing import Any

import pytest

from gql_chat.store import analytics


def test_an_aggregation_torn_by_a_concurrent_change_is_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def torn_then_whole(*_: Any) -> list[dict[str, Any]]:
        calls.append(1)
        if len(calls) < analytics.ASIDE_ATTEMPTS:
            raise RuntimeError("dictionary changed size during iteration")
        return [{"n": 1}]

    monkeypatch.setattr(analytics, "_rows", torn_then_whole)
    assert analytics._rows_aside(None, []) == [{"n": 1}]  # type: ignore[arg-type]
    assert len(calls) == analytics.ASIDE_ATTEMPTS


@pytest.mark.parametrize(
    "message", ["dictionary changed size during iteration", "something else went wrong"]
)
def test_a_failure_that_persists_or_is_not_a_race_is_raised(
    monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    calls: list[int] = []

    async def failing(*_: Any) -> list[dict[str, Any]]:
        calls.append(1)
        raise RuntimeError(message)

    monkeypatch.setattr(analytics, "_rows", failing)
    with pytest.raises(RuntimeError, match=message):
        analytics._rows_aside(None, [])  # type: ignore[arg-type]
    assert len(calls) == (analytics.ASIDE_ATTEMPTS if "iteration" in message else 1)
