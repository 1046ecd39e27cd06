"""Strawberry's resolver chain, skipped for the fields that need none of it.

For every field with a resolver function, Strawberry installs a chain that converts the
arguments, applies the field extensions, consults the exception handlers and finally calls the
function: seven calls and two closures per resolved field. A field with no arguments, no
extensions (so no permission classes), no exception handler and no subscription needs only the
last step, so `install_direct_resolvers` replaces its graphql-core resolver with one that builds
Strawberry's `Info` and calls the function as Strawberry would: `self` positionally, the parent
or root and `info` by keyword. A `conversations` page resolves two such fields per row.

This reads Strawberry's field definitions and its converter's private
`_get_field_exception_handlers`, so `require_supported_versions` stops start-up on a version
this was not checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry import Schema
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from gql_chat.platform.versions import UnsupportedVersion, distribution_version, require_versions

SUPPORTED_STRAWBERRY = ("0.341.",)
"""The versions whose resolver chain this module was checked against."""


def require_supported_versions() -> None:
    """Stop start-up when Strawberry is a version this module was not checked against."""
    require_versions(
        __name__,
        {"strawberry-graphql": SUPPORTED_STRAWBERRY},
        {"strawberry-graphql": distribution_version("strawberry-graphql")},
    )
    if not callable(getattr(GraphQLCoreConverter, "_get_field_exception_handlers", None)):
        raise UnsupportedVersion("Strawberry's converter has no _get_field_exception_handlers()")


def install_direct_resolvers(schema: Schema) -> int:
    """Give each eligible field of `schema` a direct resolver; returns how many. Run once, when
    the schema is built: graphql-core then calls the direct resolver on every path."""
    converter = schema.schema_converter
    info_class = schema.config.info_class
    installed = 0
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType):
            continue
        for field in type_.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                isinstance(definition, StrawberryField)
                and definition.base_resolver is not None
                and not definition.arguments
                and not field.args
                and not definition.extensions
                and not definition.is_subscription
                and not converter._get_field_exception_handlers(definition)
            ):
                field.resolve = _direct_resolver(definition, info_class)
                installed += 1
    return installed


def _direct_resolver(field: StrawberryField, info_class: type[Any]) -> Callable[..., Any]:
    """What Strawberry's chain ends in for `field`: its function, called with the parameters it
    asks for (`schema_converter.get_arguments`)."""
    resolver = field.base_resolver
    assert resolver is not None
    function: Callable[..., Any] = resolver.wrapped_func  # type: ignore[assignment]
    takes_self = resolver.self_parameter is not None
    source_names = [
        parameter.name
        for parameter in (resolver.parent_parameter, resolver.root_parameter)
        if parameter is not None
    ]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        kwargs = {name: source for name in source_names}
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return function(source, **kwargs) if takes_self else function(**kwargs)

    return resolve
