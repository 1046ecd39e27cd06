"""Argument conversion worked out once per argument: for every argument of gql_chat's schema
and for generated values, the same Python values as Strawberry's own conversion; the types
with rules of their own keep Strawberry's; and a schema's converters are its own."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import pytest
import strawberry
import strawberry.schema.schema_converter as strawberry_schema_converter
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.relay import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types import arguments as strawberry_arguments
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.maybe import Maybe, Some
from strawberry.types.unset import UNSET

from gql_chat.api.schema import build_schema
from gql_chat.platform import install
from gql_chat.platform import strawberry_arguments as fast_arguments
from gql_chat.platform.strawberry_arguments import convert_arguments, converter_for
from gql_chat.platform.versions import UnsupportedVersion

OMITTED = object()


def _values(type_: Any, config: StrawberryConfig, depth: int = 0) -> st.SearchStrategy[Any]:
    """What graphql-core may hand a resolver for a value of `type_` (and null and UNSET at
    every level, which the conversion passes through)."""
    passing = st.sampled_from([None, UNSET])
    if isinstance(type_, StrawberryOptional):
        return passing | _values(type_.of_type, config, depth)
    if isinstance(type_, StrawberryList):
        return passing | st.lists(_values(type_.of_type, config, depth + 1), max_size=3)
    if isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_):
        enum_definition = (
            type_
            if isinstance(type_, StrawberryEnumDefinition)
            else type_.__strawberry_definition__
        )
        return st.sampled_from(list(enum_definition.wrapped_cls))
    if has_object_definition(type_) and depth < 4:
        definition = type_.__strawberry_definition__
        entries = {
            config.name_converter.from_field(field): st.just(OMITTED)
            | _values(field.resolve_type(type_definition=definition), config, depth + 1)
            for field in definition.fields
        }
        return st.fixed_dictionaries(entries).map(
            lambda value: {k: v for k, v in value.items() if v is not OMITTED}
        )
    return passing | st.text(max_size=5) | st.integers() | st.booleans()


def _outcome(
    convert: Any, raw: dict[str, Any], field: StrawberryField, registry: Any, config: Any
) -> tuple[str, Any]:
    """The converted values, with the type of each (and of each item in a list), or the
    error raised."""
    try:
        converted = convert(raw, field.arguments, registry, config)
    except Exception as error:
        return type(error).__name__, str(error)
    return "converted", {name: (value, _types(value)) for name, value in converted.items()}


def _types(value: Any) -> Any:
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value)


def _fields_with_arguments(schema: strawberry.Schema) -> list[StrawberryField]:
    fields = []
    for type_ in schema.schema_converter.type_map.values():
        definition = getattr(type_, "definition", None)
        for field in getattr(definition, "fields", ()):
            if isinstance(field, StrawberryField) and field.arguments:
                fields.append(field)
    return fields


SCHEMA = build_schema()
FIELDS = _fields_with_arguments(SCHEMA)


def test_every_field_with_arguments_is_covered_and_gets_a_converter() -> None:
    """The generated test below reaches the fields that matter, and every argument of
    gql_chat's schema converts without falling back to Strawberry's conversion."""
    names = {field.python_name for field in FIELDS}
    assert {"send_message", "update_conversation", "conversations", "message_stream"} <= names
    registry = SCHEMA.schema_converter.scalar_registry
    for field in FIELDS:
        for argument in field.arguments:
            assert converter_for(argument.type, registry, SCHEMA.config) is not None, (
                field.python_name,
                argument.python_name,
            )


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_same_values_as_strawberrys_conversion(data: st.DataObject) -> None:
    """Every field with arguments, each example: generated values (nested inputs with fields
    left out, nulls and UNSET at every level, lists), some arguments left out."""
    registry = SCHEMA.schema_converter.scalar_registry
    config = SCHEMA.config
    for field in FIELDS:
        raw = {
            config.name_converter.from_argument(argument): data.draw(_values(argument.type, config))
            for argument in field.arguments
        }
        raw = {name: value for name, value in raw.items() if data.draw(st.booleans())}
        expected = _outcome(strawberry_arguments.convert_arguments, raw, field, registry, config)
        assert _outcome(convert_arguments, raw, field, registry, config) == expected


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.input
class Inner:
    colours: list[Colour] | None = None
    tags: list[str | None] = strawberry.field(default_factory=list)


@strawberry.input
class Outer:
    some_name: str
    inners: list[Inner] | None = None
    inner: Inner | None = None
    count: int = 3


@strawberry.input
class WithMaybe:
    note: Maybe[str]


@strawberry.input
class Built:
    value: str


def _build(cls: type, value: Any, context: Any) -> Built:
    return Built(value=f"built {value['value']} at {context.path}")


Built.__strawberry_definition__.from_input = _build  # type: ignore[attr-defined]


@strawberry.type
class Query:
    @strawberry.field
    def outer(self, outer_input: Outer, colour: Colour | None = None) -> str:
        return ""

    @strawberry.field
    def maybe(self, note: Maybe[str], wrapped: WithMaybe | None = None) -> str:
        return ""

    @strawberry.field
    def node(self, node_id: GlobalID, node_ids: list[GlobalID] | None = None) -> str:
        return ""

    @strawberry.field
    def built(self, built: Built) -> str:
        return ""

    @strawberry.field
    def later(self, lazy: Annotated[Inner, strawberry.lazy(__name__)] | None = None) -> str:
        return ""


def _field(schema: strawberry.Schema, name: str) -> StrawberryField:
    definition = schema.get_type_by_name("Query")
    assert isinstance(definition, StrawberryObjectDefinition)
    return next(f for f in definition.fields if f.python_name == name)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        (
            "outer",
            {
                "outerInput": {
                    "someName": "x",
                    "inners": [{"colours": [Colour.RED], "tags": ["a", None]}, {}],
                    "inner": None,
                },
                "colour": Colour.BLUE,
            },
        ),
        ("outer", {"outerInput": {"someName": "y", "count": 5}}),
        ("outer", {"outerInput": {"count": 5}}),
        ("maybe", {"note": "kept", "wrapped": {"note": "w"}}),
        ("maybe", {"note": None}),
        ("node", {"nodeId": str(GlobalID("Thing", "1")), "nodeIds": [str(GlobalID("T", "2"))]}),
        ("built", {"built": {"value": "v"}}),
        ("later", {"lazy": {"colours": [Colour.BLUE]}}),
    ],
)
def test_fallbacks_and_nesting_convert_as_strawberry_does(name: str, raw: dict[str, Any]) -> None:
    """`Maybe` as Strawberry has it (`Some`, or its error for a null it refuses); `GlobalID`
    and `from_input` keep Strawberry's own conversion (its `GlobalID`, its builder with the
    value's path); nested inputs and lists, lazily annotated ones among them."""
    schema = strawberry.Schema(query=Query)
    field = _field(schema, name)
    registry, config = schema.schema_converter.scalar_registry, schema.config
    expected = _outcome(strawberry_arguments.convert_arguments, raw, field, registry, config)
    assert _outcome(convert_arguments, raw, field, registry, config) == expected
    if name == "maybe" and raw["note"] is not None:
        converted = {name: value for name, (value, _) in expected[1].items()}
        assert converted == {"note": Some("kept"), "wrapped": WithMaybe(note=Some("w"))}
    if name == "maybe" and raw["note"] is None:  # `Maybe[str]` refuses null: Strawberry's error
        assert expected[0] == "StrawberryInputCoercionError"
    if name == "built":
        assert expected[1]["built"][0].value == "built v at ('built',)"


def test_types_with_rules_of_their_own_get_no_converter() -> None:
    schema = strawberry.Schema(query=Query)
    registry, config = schema.schema_converter.scalar_registry, schema.config
    converters = {
        (name, argument.python_name): converter_for(argument.type, registry, config)
        for name in ("outer", "maybe", "node", "built", "later")
        for argument in _field(schema, name).arguments
    }
    assert converters[("outer", "outer_input")] is not None
    assert converters[("outer", "colour")] is not None
    for kept in (("node", "node_id"), ("built", "built")):
        assert converters[kept] is None, kept
    assert converters[("node", "node_ids")] is None  # a list of GlobalIDs: each one decoded
    assert converter_for(LazyType("Inner", __name__), registry, config) is None
    assert converters[("maybe", "note")] is not None


def test_a_list_of_scalars_is_copied() -> None:
    """graphql-core hands every request that omits a list the same default list: the resolver
    must get its own."""
    schema = strawberry.Schema(query=Query)
    field = _field(schema, "outer")
    tags = ["a", "b"]
    raw = {"outerInput": {"someName": "x", "inner": {"tags": tags}}}
    converted = convert_arguments(
        raw, field.arguments, schema.schema_converter.scalar_registry, schema.config
    )
    assert converted["outer_input"].inner.tags == tags
    assert converted["outer_input"].inner.tags is not tags


def test_each_schema_converts_with_its_own_names() -> None:
    """The same argument objects in two schemas, one without camel case: each converts with
    its own names, however often the other ran first."""
    camel = strawberry.Schema(query=Query)
    snake = strawberry.Schema(query=Query, config=StrawberryConfig(auto_camel_case=False))
    for _ in range(2):
        for schema, key, inner in (
            (camel, "outerInput", "someName"),
            (snake, "outer_input", "some_name"),
        ):
            field = _field(schema, "outer")
            converted = convert_arguments(
                {key: {inner: "named"}},
                field.arguments,
                schema.schema_converter.scalar_registry,
                schema.config,
            )
            assert converted["outer_input"].some_name == "named"


def test_installed_in_strawberrys_resolver_chain() -> None:
    """The app's start-up installs it; Strawberry's chain then converts through it."""
    install()
    assert strawberry_schema_converter.convert_arguments is convert_arguments  # type: ignore[attr-defined]


def test_an_unchecked_strawberry_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strawberry_schema_converter, "convert_arguments", lambda *a: {})
    with pytest.raises(UnsupportedVersion):
        fast_arguments.require_supported_versions()
    monkeypatch.undo()
    monkeypatch.setattr(fast_arguments, "distribution_version", lambda name: "0.300.0")
    with pytest.raises(UnsupportedVersion):
        fast_arguments.require_supported_versions()
