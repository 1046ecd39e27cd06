"""`Page` is what every connection is built from: a plain, immutable value."""

from __future__ import annotations

import dataclasses

import pytest

from gql_chat.domain.pages import Page


def test_a_page_is_frozen_and_compares_by_value() -> None:
    page = Page(
        items=[("c1", 1), ("c2", 2)], has_next_page=True, has_previous_page=False, total_count=5
    )
    same = Page(
        items=[("c1", 1), ("c2", 2)], has_next_page=True, has_previous_page=False, total_count=5
    )
    assert page == same
    assert page != dataclasses.replace(page, has_next_page=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.total_count = 6  # type: ignore[misc]


def test_a_page_has_no_instance_dict() -> None:
    """Slots: a connection of many pages does not pay a dict per page."""
    page: Page[int] = Page(items=[], has_next_page=False, has_previous_page=False, total_count=0)
    assert not hasattr(page, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        page.extra = 1  # type: ignore[attr-defined]
