"""Every query the app sends is served by an index, proven against a MongoDB server.

A command listener records each query a realistic session sends (sign-up, sign-in, refresh,
folders, presets, conversations by activity, folder, pin, archive and search, messages sent,
followed, paged, branched, retried with an idempotency key, deleted, and the admin's views).
Each must pass one of two checks, and a query that passes neither fails the test, named:
- the server's own `explain` shows no collection scan in the winning plan;
- MongoDB's rule for index candidacy holds against the collection's real indexes (read from the
  server): a top-level equality, `$in` or range predicate on an index's first field, with a
  partial index's filter implied by the query; under a top-level `$or`, every branch.
The second check exists because SecantusDB's planner (the CI test server) scans whenever `_id`
is combined with another field, as in our owner-scoped `{_id, owner_id}` reads, where MongoDB
uses the `_id` index. Updates and deletes are checked as the `find` that locates their documents
(the test server's `explain` does not plan `update` and `delete`).

The session runs against GQL_CHAT_TEST_MONGODB_URL (skipped on the embedded store, which has
no planner); the candidacy rule is tested on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from starlette.applications import Starlette

from gql_chat.config import Settings
from tests.conftest import TEST_MONGODB_URL
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    create_conversation,
    create_folder,
    create_preset,
    send_message,
    sign_up,
)

needs_server = pytest.mark.skipif(
    TEST_MONGODB_URL is None, reason="needs GQL_CHAT_TEST_MONGODB_URL (a MongoDB server)"
)

FILTER_KEYS = {
    "find": "filter",
    "count": "query",
    "findAndModify": "query",
    "distinct": "query",
}
SCANS_BY_DESIGN = {("users", "find"), ("users", "aggregate")}
"""The admin's user search: a substring of any email, over every user, paged and bounded to 200
characters (an admin-only view; a text index would not match substrings)."""
NARROWING = {"$eq", "$in", "$gt", "$gte", "$lt", "$lte", "$type"}


@dataclass(frozen=True)
class Query:
    collection: str
    command: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None

    def describe(self) -> str:
        return f"{self.command} on {self.collection}: filter={self.filter} sort={self.sort}"


class QueryRecorder(monitoring.CommandListener):
    """Registered once for the process (PyMongo has no way to unregister); records only while
    a test has it `recording`, and only in that test's database."""

    database: str | None = None
    queries: list[Query]

    def __init__(self) -> None:
        self.queries = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name != self.database:
            return
        self.queries.extend(_queries_in(event.command_name, event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _queries_in(name: str, command: Any) -> Iterator[Query]:
    collection = command.get(name)
    if not isinstance(collection, str):
        return
    if name in FILTER_KEYS:
        yield Query(collection, name, dict(command.get(FILTER_KEYS[name]) or {}), _sort(command))
    elif name == "aggregate":
        stages = list(command.get("pipeline") or [])
        match = stages[0].get("$match") if stages else None
        if match is not None:
            following = stages[1].get("$sort") if len(stages) > 1 else None
            yield Query(collection, name, dict(match), dict(following) if following else None)
    elif name in ("update", "delete"):
        for statement in command.get(f"{name}s") or []:
            yield Query(collection, name, dict(statement.get("q") or {}), None)


def _sort(command: Any) -> dict[str, Any] | None:
    sort = command.get("sort")
    return dict(sort) if sort else None


RECORDER = QueryRecorder()
monitoring.register(RECORDER)


def stages_of(plan: dict[str, Any]) -> Iterator[str]:
    yield str(plan.get("stage"))
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            yield from stages_of(plan[key])
    for child in plan.get("inputStages") or []:
        yield from stages_of(child)


async def server_plan_scans(
    client: AsyncMongoClient[dict[str, Any]], db: str, query: Query
) -> bool:
    command: dict[str, Any] = {"find": query.collection, "filter": query.filter}
    if query.sort:
        command["sort"] = query.sort
    explained = await client[db].command("explain", command)
    plan = explained["queryPlanner"]["winningPlan"]
    return "COLLSCAN" in set(stages_of(plan))


def narrowed_fields(query_filter: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields (through `$and`) whose predicate bounds an index scan, with their
    predicates: equality, `$in` and ranges do; `$ne`, `$nin`, `$exists` and regexes do not."""
    fields: dict[str, Any] = {}
    for key, value in query_filter.items():
        if key == "$and":
            for clause in value:
                fields.update(narrowed_fields(clause))
        elif key.startswith("$"):
            continue
        elif not isinstance(value, dict) or (value and set(value) <= NARROWING):
            fields[key] = value
    return fields


def implies(fields: dict[str, Any], partial: dict[str, Any]) -> bool:
    """The query pins every field of a partial index's filter to a value that passes it (our
    partial filters are `{field: {"$type": ...}}` and equalities)."""
    for field, condition in partial.items():
        value = fields.get(field)
        if value is None or isinstance(value, dict):
            return False
        if isinstance(condition, dict) and condition.get("$type") == "string":
            if not isinstance(value, str):
                return False
        elif condition != value and not isinstance(condition, dict):
            return False
    return True


def has_candidate_index(query_filter: dict[str, Any], indexes: Mapping[str, Any]) -> bool:
    fields = narrowed_fields(query_filter)
    for index in indexes.values():
        first = index["key"][0][0]
        partial = index.get("partialFilterExpression")
        if first in fields and (partial is None or implies(fields, dict(partial))):
            return True
    branches: list[dict[str, Any]] = query_filter.get("$or") or []
    return bool(branches) and all(has_candidate_index(b, indexes) for b in branches)


async def uses_no_index(client: AsyncMongoClient[dict[str, Any]], db: str, query: Query) -> bool:
    if not await server_plan_scans(client, db, query):
        return False
    indexes = await client[db][query.collection].index_information()
    return not has_candidate_index(query.filter, indexes)


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    settings: Settings = settings_factory(offline_token_delay=0.0)
    RECORDER.database = settings.mongodb_db
    RECORDER.queries = []
    return settings


async def a_realistic_session(gql: GraphQLClient, app: Starlette) -> None:
    alice = await sign_up(gql)
    admin = await sign_up(gql)
    await app.state.services.accounts.create_admin(admin.email, "")
    login = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
        refreshToken } }"""
    refresh = (await gql.execute(login, {"e": alice.email, "p": DEFAULT_PASSWORD})).ok()["login"][
        "refreshToken"
    ]
    await gql.execute(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }", {"t": refresh}
    )
    parent = await create_folder(alice, "Work")
    child = await create_folder(alice, "Project", parent)
    preset = await create_preset(alice, "Terse", isDefault=True)
    filed = await create_conversation(alice, title="Filed", folderId=child, llmConfigId=preset)
    await alice.ok(
        "mutation($id: ID!) { updateConversation(id: $id, input: {pinned: true}) { id } }",
        {"id": filed},
    )
    sent = await send_message(alice, "Hello there", clientMessageId="key-1")
    await send_message(alice, "Hello there", clientMessageId="key-1")  # the idempotent retry
    await send_message(alice, "More", conversationId=filed)
    await _settle(alice, sent["assistantMessage"]["id"])
    conversation = sent["conversation"]["id"]
    await alice.ok(
        "mutation($id: ID!) { regenerateMessage(messageId: $id) { assistantMessage { id } } }",
        {"id": sent["assistantMessage"]["id"]},
    )
    await alice.ok(
        "mutation($id: ID!) { updateConversation(id: $id, input: {archived: true}) { id } }",
        {"id": conversation},
    )
    await _read_everything(alice, conversation, child)
    await alice.ok(
        "mutation($id: ID!) { updateFolder(id: $id, input: {parentId: null}) { id } }",
        {"id": child},
    )
    await alice.ok("mutation($id: ID!) { deleteFolder(id: $id) }", {"id": parent})
    await admin.ok('{ users(first: 5, search: "example") { totalCount } }')
    await alice.ok("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": conversation})


async def _settle(user: SignedIn, message_id: str) -> None:
    for _ in range(200):
        status = (
            await user.ok("query($id: ID!) { message(id: $id) { status } }", {"id": message_id})
        )["message"]["status"]
        if status not in ("PENDING", "STREAMING"):
            return
        await asyncio.sleep(0.02)


async def _read_everything(user: SignedIn, conversation: str, folder: str) -> None:
    await user.ok(
        """query($c: ID!, $f: ID!) {
          me { id defaultLlmConfig { id } }
          folders { id children { id } conversations(first: 5) { totalCount } }
          folder(id: $f) { conversations(first: 5) { edges { node { id } } } }
          byActivity: conversations(first: 5) { totalCount edges { node { id title
              folder { id parent { id } } llmConfig { id } usage { cost } messageCount } } }
          inFolder: conversations(first: 5, folderId: $f) { totalCount }
          pinned: conversations(first: 5, pinned: true) { totalCount }
          archived: conversations(first: 5, archived: true) { totalCount }
          searched: conversations(first: 5, search: "hello") { totalCount }
          conversation(id: $c) { messages(last: 50) { totalCount edges { node { id siblingIds } } } }
          llmConfigs { id }
        }""",
        {"c": conversation, "f": folder},
    )


@needs_server
async def test_every_query_of_a_session_uses_an_index(
    app: Starlette, gql: GraphQLClient, settings: Settings
) -> None:
    await a_realistic_session(gql, app)
    RECORDER.database = None
    queries = {query.describe(): query for query in RECORDER.queries}
    assert len(queries) >= 20, sorted(queries)  # the session really went through the store
    assert TEST_MONGODB_URL is not None
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(TEST_MONGODB_URL)
    try:
        scanning = [
            described
            for described, query in sorted(queries.items())
            if (query.collection, query.command) not in SCANS_BY_DESIGN
            and await uses_no_index(client, settings.mongodb_db, query)
        ]
    finally:
        await client.close()
    assert scanning == [], "\n".join(scanning)


INDEXES = {
    "_id_": {"key": [("_id", 1)]},
    "owner_conversation": {"key": [("owner_id", 1), ("conversation_id", 1), ("_id", 1)]},
    "owner_client_message_unique": {
        "key": [("owner_id", 1), ("client_message_id", 1)],
        "partialFilterExpression": {"client_message_id": {"$type": "string"}},
    },
    "client_key": {
        "key": [("client_message_id", 1)],
        "partialFilterExpression": {"client_message_id": {"$type": "string"}},
    },
    "status": {"key": [("status", 1)]},
}


@pytest.mark.parametrize(
    ("query_filter", "indexed"),
    [
        ({"_id": 1, "owner_id": 2}, True),
        ({"_id": {"$in": [1, 2]}, "owner_id": 2}, True),
        ({"owner_id": 2, "conversation_id": {"$in": [1]}}, True),
        ({"$and": [{"status": {"$in": ["PENDING"]}}, {"x": 1}]}, True),
        ({"client_message_id": "k"}, True),
        ({"client_message_id": {"$ne": None}}, False),  # does not imply the partial filter
        ({"conversation_id": 1}, False),  # not a first field
        ({"content": {"$regex": "x"}}, False),
        ({"status": {"$ne": "COMPLETE"}}, False),
        ({"$or": [{"_id": 1}, {"status": "ERROR"}]}, True),
        ({"$or": [{"_id": 1}, {"title": "x"}]}, False),
        ({}, False),
    ],
)
def test_the_candidacy_rule(query_filter: dict[str, Any], indexed: bool) -> None:
    assert has_candidate_index(query_filter, INDEXES) is indexed
