"""The schema: every domain's Query, Mutation and Subscription parts merged into one."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.printer import print_schema

from gql_chat.api.accounts import AccountMutation, AccountQuery
from gql_chat.api.errors import GqlChatSchema, MaskInternalErrors


@strawberry.type
class Query(AccountQuery):
    pass


@strawberry.type
class Mutation(AccountMutation):
    pass


def build_schema() -> strawberry.Schema:
    return GqlChatSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            MaskInternalErrors,
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )


def schema_sdl() -> str:
    return print_schema(build_schema()) + "\n"
