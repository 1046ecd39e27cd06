"""PyMongo's `AsyncGridFSBucket` over the embedded store.

pymongo-async-mock wraps mongomock's database and collections so that they pass PyMongo's
`isinstance` checks, but two ways out of the wrapper lead back to raw mongomock objects, which
`AsyncGridIn` then refuses ("root_collection must be an instance of AsyncCollection"):

- `database.with_options(...)` (GridFS calls it to clear the codec registry) goes through the
  wrapper's `__getattr__` to mongomock's database, which returns a mongomock database;
- `collection.files`, `collection.chunks` and `collection.with_options(...)` return mongomock
  collections the same way.

`install()` makes both return wrapped objects again, so the embedded store runs the very
GridFS code that real MongoDB runs (files and chunks collections, indexes, chunked reads)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version as distribution_version
from typing import Any

import pymongo_async_mock
from mongomock.collection import Collection as MongoMockCollection
from mongomock.database import Database as MongoMockDatabase

from gql_chat.platform.versions import UnsupportedVersion, require_versions

SUPPORTED_PYMONGO_ASYNC_MOCK = ("0.1.",)
SUPPORTED_MONGOMOCK = ("4.",)
WRAPS = "_gql_chat_wraps_gridfs"

AsyncCollection: Any = pymongo_async_mock.AsyncMongoMockCollection
AsyncDatabase: Any = pymongo_async_mock.AsyncMongoMockDatabase


def _wrapped(database: Any, value: Any) -> Any:
    """A mongomock collection or database `value` reached from `database`, wrapped again."""
    if isinstance(value, MongoMockCollection):
        return AsyncCollection(database, value)
    if isinstance(value, MongoMockDatabase):
        return AsyncDatabase(database.client, value)
    return value


def _returning_wrapped(database: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrapped(database, method(*args, **kwargs))

    return call


def _collection_getattr(original: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def __getattr__(self: Any, name: str) -> Any:
        value = original(self, name)
        if name == "with_options":
            return _returning_wrapped(self.database, value)
        return _wrapped(self.database, value)  # `files`, `chunks`: sub-collections

    setattr(__getattr__, WRAPS, True)
    return __getattr__


def _database_getattr(original: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def __getattr__(self: Any, name: str) -> Any:
        value = original(self, name)
        if name == "with_options":
            return _returning_wrapped(self, value)
        return value

    setattr(__getattr__, WRAPS, True)
    return __getattr__


def require_supported_versions() -> None:
    require_versions(
        __name__,
        {"pymongo-async-mock": SUPPORTED_PYMONGO_ASYNC_MOCK, "mongomock": SUPPORTED_MONGOMOCK},
        {
            "pymongo-async-mock": distribution_version("pymongo-async-mock"),
            "mongomock": distribution_version("mongomock"),
        },
    )
    for cls in (AsyncCollection, AsyncDatabase):
        if not callable(getattr(cls, "__getattr__", None)):
            raise UnsupportedVersion(f"pymongo-async-mock's {cls.__name__} has no __getattr__")


def install() -> None:
    """Idempotent."""
    require_supported_versions()
    if not getattr(AsyncCollection.__getattr__, WRAPS, False):
        AsyncCollection.__getattr__ = _collection_getattr(AsyncCollection.__getattr__)
    if not getattr(AsyncDatabase.__getattr__, WRAPS, False):
        AsyncDatabase.__getattr__ = _database_getattr(AsyncDatabase.__getattr__)
