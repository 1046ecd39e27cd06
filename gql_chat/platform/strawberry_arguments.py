"""Strawberry's argument conversion, worked out once per argument instead of on every call.

Before a resolver runs, Strawberry turns graphql-core's coerced arguments into Python values:
`convert_arguments` walks each argument's type, and for an input object each of its fields,
asking the name converter for every field's GraphQL name (camel-casing it again) and resolving
every field's type annotation again, on every request. A `sendMessage` input took 23 us in a
hot loop and about 150 us on a server between replies, on the way to the reply's first token.

`install` replaces the `convert_arguments` that Strawberry's resolver chain calls with one that
builds a converter per argument the first time it sees it: the names and types resolved once,
the same steps in the same order (`Maybe`, optional, null, unset, list, scalar or enum, input
object).
A type with conversion rules of its own (a `GlobalID`, a lazy type, an input with
`from_input`, anything unknown) keeps Strawberry's `convert_argument` for that argument. The
converters are kept on the schema's config, so they go with the schema. This reads Strawberry's
argument and type definitions, so `require_supported_versions` stops start-up on a version this
was not checked against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, NamedTuple

import strawberry.schema.schema_converter as strawberry_schema_converter
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.types import arguments as strawberry_arguments
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.info import Info
from strawberry.types.lazy_type import LazyType
from strawberry.types.maybe import Some
from strawberry.types.unset import UNSET

from gql_chat.platform.versions import UnsupportedVersion, distribution_version, require_versions

SUPPORTED_STRAWBERRY = ("0.341.",)
"""The versions whose `convert_argument` this module follows."""

Converter = Callable[[Any], Any]
ScalarRegistry = Mapping[object, Any]
_CONVERTERS = "_gql_chat_argument_converters"
"""The config attribute holding its schema's `ArgumentConverter`s, by id(argument)."""


class ArgumentConverter(NamedTuple):
    argument: StrawberryArgument
    scalar_registry: ScalarRegistry
    name: str
    python_name: str
    convert: Converter | None
    """None: Strawberry's own `convert_argument`."""


_strawberry_convert_arguments = strawberry_arguments.convert_arguments


def require_supported_versions() -> None:
    """Stop start-up when Strawberry is a version this module was not checked against."""
    require_versions(
        __name__,
        {"strawberry-graphql": SUPPORTED_STRAWBERRY},
        {"strawberry-graphql": distribution_version("strawberry-graphql")},
    )
    if getattr(strawberry_schema_converter, "convert_arguments", None) not in (
        _strawberry_convert_arguments,
        convert_arguments,
    ):
        raise UnsupportedVersion("Strawberry's resolver chain no longer calls convert_arguments")


def install() -> None:
    """Strawberry's resolver chain (`get_arguments`) calls this module's `convert_arguments`."""
    strawberry_schema_converter.convert_arguments = convert_arguments  # type: ignore[attr-defined]


def convert_arguments(
    value: dict[str, Any],
    arguments: list[StrawberryArgument],
    scalar_registry: ScalarRegistry,
    config: StrawberryConfig,
    info: Info | None = None,
) -> dict[str, Any]:
    """Strawberry's `convert_arguments`, with each argument's converter built once."""
    if not arguments:
        return {}
    converters: dict[int, ArgumentConverter] | None = getattr(config, _CONVERTERS, None)
    if converters is None:
        converters = {}
        setattr(config, _CONVERTERS, converters)
    kwargs: dict[str, Any] = {}
    for argument in arguments:
        entry = converters.get(id(argument))
        if (
            entry is None
            or entry.argument is not argument
            or entry.scalar_registry is not scalar_registry
        ):
            entry = _argument_converter(argument, scalar_registry, config)
            converters[id(argument)] = entry
        if entry.name in value:
            raw = value[entry.name]
            kwargs[entry.python_name] = (
                entry.convert(raw)
                if entry.convert is not None
                else strawberry_arguments.convert_argument(
                    raw, argument.type, scalar_registry, config, info, path=(entry.name,)
                )
            )
    return kwargs


def _argument_converter(
    argument: StrawberryArgument, scalar_registry: ScalarRegistry, config: StrawberryConfig
) -> ArgumentConverter:
    assert argument.python_name
    return ArgumentConverter(
        argument=argument,
        scalar_registry=scalar_registry,
        name=config.name_converter.from_argument(argument),
        python_name=argument.python_name,
        convert=converter_for(argument.type, scalar_registry, config),
    )


def converter_for(
    type_: Any, scalar_registry: ScalarRegistry, config: StrawberryConfig
) -> Converter | None:
    """What `convert_argument` does for a value of `type_`, or None where only Strawberry's own
    will do. Null and unset values pass through as they are, at every level, as there."""
    if isinstance(type_, StrawberryMaybe):
        return _maybe_converter(type_, scalar_registry, config)
    if isinstance(type_, StrawberryOptional):
        return converter_for(type_.of_type, scalar_registry, config)
    if isinstance(type_, StrawberryList):
        return _list_converter(type_.of_type, scalar_registry, config)
    if type_ is GlobalID or isinstance(type_, LazyType):
        return None
    if _is_leaf(type_, scalar_registry) or has_enum_definition(type_):
        return _as_it_is
    if has_object_definition(type_):
        return _input_converter(type_, scalar_registry, config)
    return None  # a type Strawberry refuses: its own error


def _maybe_converter(
    type_: StrawberryMaybe, scalar_registry: ScalarRegistry, config: StrawberryConfig
) -> Converter | None:
    """`Maybe[T | None]` wraps whatever it gets in `Some`; `Maybe[T]` refuses null, with
    Strawberry's own error."""
    convert_value = converter_for(type_.of_type, scalar_registry, config)
    if convert_value is None:
        return None
    if isinstance(type_.of_type, StrawberryOptional):
        return lambda value: Some(convert_value(value))

    def convert(value: Any) -> Any:
        if value is None:
            return strawberry_arguments.convert_argument(value, type_, scalar_registry, config)
        return Some(convert_value(value))

    return convert


def _as_it_is(value: Any) -> Any:
    return value


def _is_leaf(type_: Any, scalar_registry: ScalarRegistry) -> bool:
    return is_scalar(type_, scalar_registry) or isinstance(type_, StrawberryEnumDefinition)


def _list_converter(
    item_type: Any, scalar_registry: ScalarRegistry, config: StrawberryConfig
) -> Converter | None:
    unwrapped = item_type.of_type if isinstance(item_type, StrawberryOptional) else item_type
    if unwrapped is not GlobalID and _is_leaf(unwrapped, scalar_registry):
        # Copied all the same: graphql-core gives every request that omits the value the same
        # default list, so a change to it would leak into the next requests.
        return _copied_list
    convert_item = converter_for(item_type, scalar_registry, config)
    if convert_item is None:
        return None

    def convert(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        return [convert_item(item) for item in value]

    return convert


def _copied_list(value: Any) -> Any:
    if value is None or value is UNSET:
        return value
    return list(value)


def _input_converter(
    type_: Any, scalar_registry: ScalarRegistry, config: StrawberryConfig
) -> Converter | None:
    definition = type_.__strawberry_definition__
    if definition.from_input is not None:
        return None
    defaults: dict[str, Any] = {}
    if definition.is_input:
        # As Strawberry: None for every field without a default; graphql-core has checked
        # that the required ones are there.
        defaults = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        }
    fields: list[tuple[str, str, Converter]] = []
    for field in definition.fields:
        field_converter = converter_for(
            field.resolve_type(type_definition=definition), scalar_registry, config
        )
        if field_converter is None:
            return None
        fields.append((config.name_converter.from_field(field), field.python_name, field_converter))

    def convert(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        kwargs = dict(defaults)
        for name, python_name, convert_field in fields:
            if name in value:
                kwargs[python_name] = convert_field(value[name])
        return type_(**kwargs)

    return convert
