"""Look ahead into the selection, so a list resolver can read what its rows will need in one
query up front instead of leaving each row an async resolver of its own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

if TYPE_CHECKING:
    from gql_chat.api.context import Info


def _fields(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    """The fields among `selections`, looking through fragments."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections)


def selected_names(info: Info, *path: str) -> set[str]:
    """The field names selected under `path` of the current field, e.g. `("edges", "node")`.

    `@skip`/`@include` are not evaluated: a conditional field counts as selected, so a caller
    may read something it does not use, never miss something it does."""
    # `info.selected_fields` is the current field itself (once per alias); start below it.
    level = [child for field in info.selected_fields for child in _fields(field.selections)]
    for name in path:
        level = [
            child for field in level if field.name == name for child in _fields(field.selections)
        ]
    return {field.name for field in level}
