"""Look ahead into the selection, so a list resolver can read what its rows will need in one
query up front instead of leaving each row an async resolver of its own."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


def _fields_named(selections: Iterable[Selection], name: str) -> list[SelectedField]:
    """The fields called `name` among `selections`, looking through fragments."""
    found: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                found.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            found.extend(_fields_named(selection.selections, name))
    return found


def selects(info: strawberry.Info, *path: str) -> bool:
    """Whether the current field's selection reaches `path`, e.g. `("edges", "node", "folder")`.

    `@skip`/`@include` are not evaluated: a conditional field counts as selected, so a caller
    may read something it does not use, never miss something it does."""
    level: list[SelectedField] = [
        field for field in info.selected_fields if isinstance(field, SelectedField)
    ]
    for name in path:
        level = _fields_named((s for field in level for s in field.selections), name)
        if not level:
            return False
    return True
