"""Strawberry's resolver chain, skipped for the fields that need none of it.

For every field with a resolver function, Strawberry installs a chain that converts the
arguments, applies the field extensions, consults the exception handlers and finally calls the
function: seven calls and two closures per resolved field. A field with no arguments, no
extensions, no exception handler and no subscription needs only the last step, so
`install_direct_resolvers` replaces its graphql-core resolver with one that builds Strawberry's
`Info` and calls the function as Strawberry would: `self` positionally, the parent or root and
`info` by keyword. A `conversations` page resolves two such fields per row.

An `async` field whose one extension is Strawberry's permission check (`permission_classes`,
not failing silently), such as `me`, gets the same with the check first, as Strawberry's
`PermissionExtension.resolve_async` makes it: each permission awaited in turn, a result that is
not a bool refused, and a denial answered by the permission's `on_unauthorized`.

This reads Strawberry's field definitions and its converter's private
`_get_field_exception_handlers`, so `require_supported_versions` stops start-up on a version
this was not checked against.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry import Schema
from strawberry.exceptions import PermissionReturnedNonBooleanError
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry.utils.await_maybe import await_maybe

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
            if not (
                isinstance(definition, StrawberryField)
                and definition.base_resolver is not None
                and not definition.arguments
                and not field.args
                and not definition.is_subscription
                and not converter._get_field_exception_handlers(definition)
            ):
                continue
            if not definition.extensions:
                field.resolve = _direct_resolver(definition, info_class)
            elif (permissions := _checked_permissions(definition)) is not None:
                field.resolve = _guarded_resolver(definition, info_class, permissions)
            else:
                continue
            installed += 1
    return installed


def _checked_permissions(field: StrawberryField) -> Sequence[BasePermission] | None:
    """The permissions of an `async` field whose one extension is Strawberry's permission
    check, raising when denied; None for any other field."""
    match field.extensions:
        case [PermissionExtension(fail_silently=False) as check] if field.is_async:
            return tuple(check.permissions)
    return None


def _call(field: StrawberryField) -> tuple[Callable[[Any, Any], Any], bool]:
    """What Strawberry's chain ends in for `field`: its function, called with the parameters it
    asks for (`schema_converter.get_arguments`) from the source and Strawberry's `Info`; and
    whether it asks for the `Info`."""
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

    def call(source: Any, info: Any) -> Any:
        kwargs = {name: source for name in source_names}
        if info_name is not None:
            kwargs[info_name] = info
        return function(source, **kwargs) if takes_self else function(**kwargs)

    return call, info_name is not None


def _direct_resolver(field: StrawberryField, info_class: type[Any]) -> Callable[..., Any]:
    call, wants_info = _call(field)

    def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        return call(source, info_class(_raw_info=info, _field=field) if wants_info else None)

    return resolve


def _guarded_resolver(
    field: StrawberryField, info_class: type[Any], permissions: Sequence[BasePermission]
) -> Callable[..., Any]:
    call, _ = _call(field)

    async def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        for permission in permissions:
            allowed = await await_maybe(permission.has_permission(source, strawberry_info))
            if not isinstance(allowed, bool):
                if inspect.iscoroutine(allowed):
                    allowed.close()
                raise PermissionReturnedNonBooleanError(permission, allowed)
            if not allowed:
                return permission.on_unauthorized()
        return await call(source, strawberry_info)

    return resolve
