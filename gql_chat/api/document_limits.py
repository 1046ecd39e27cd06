"""Depth and alias limits as validation rules built once, not per request.

Strawberry's `QueryDepthLimiter` and `MaxAliasesLimiter` create a new rule class on every
instantiation, so with per-request factories the `ValidationCache` key never repeats and every
request is validated again (measured: validation was half of a `me` request's server time).
The rule classes are built once per limit value here and shared; the extension instance stays
per request, as Strawberry recommends."""

from __future__ import annotations

from functools import lru_cache

from graphql import ASTValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule


@lru_cache(maxsize=16)
def limit_rules(
    max_depth: int, max_aliases: int, forbid_introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    rules: list[type[ASTValidationRule]] = [depth_rule(max_depth, None), aliases_rule(max_aliases)]
    if forbid_introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def document_limits(
    max_depth: int, max_aliases: int, forbid_introspection: bool
) -> type[AddValidationRules]:
    """An extension class whose rules are the shared, cached ones."""
    rules: list[type[ASTValidationRule]] = list(
        limit_rules(max_depth, max_aliases, forbid_introspection)
    )

    class DocumentLimits(AddValidationRules):
        def __init__(self) -> None:
            super().__init__(rules)

    return DocumentLimits
