"""Look ahead into the selection, so a list resolver can read what its rows will need in one
query up front instead of leaving each row an async resolver of its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

if TYPE_CHECKING:
    from gql_chat.api.context import Info


def _fields(
    selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of `selection_set`, looking through fragments."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments)


def selected_names(info: Info, *path: str) -> set[str]:
    """The field names selected under `path` of the current field, e.g. `("edges", "node")`.

    Read off the document's nodes (graphql-core's resolve info, which Strawberry's `Info`
    wraps): `info.selected_fields` would first convert the whole selection below the field,
    arguments included (about 2 % of a `conversations` page's time, py-spy). `@skip`/`@include`
    are not evaluated: a conditional field counts as selected, so a caller may read something
    it does not use, never miss something it does. Fragments are walked at each spread, which
    the document limits bound (`document_limits`)."""
    raw = info._raw_info
    fragments = raw.fragments
    level = [child for node in raw.field_nodes for child in _fields(node.selection_set, fragments)]
    for name in path:
        level = [
            child
            for node in level
            if node.name.value == name
            for child in _fields(node.selection_set, fragments)
        ]
    return {node.name.value for node in level}
