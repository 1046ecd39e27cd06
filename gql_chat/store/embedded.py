"""The embedded store: mongomock behind PyMongo's async API, with the hash indexes of
`gql_chat.platform.mongomock_indexes` (installed at start-up by `gql_chat.platform.install`)
giving it the lookups MongoDB gets from its indexes."""

from __future__ import annotations

from pymongo_async_mock import AsyncMongoMockClient

from gql_chat.platform import require_installed


def open_embedded_client() -> AsyncMongoMockClient:
    """A new in-memory store."""
    require_installed("open_embedded_client")
    return AsyncMongoMockClient(tz_aware=True)
