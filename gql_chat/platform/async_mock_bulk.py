"""pymongo-async-mock wraps `mongomock.collection.BulkOperationBuilder.add_update` (to drop the
`sort` argument mongomock does not take) each time it wraps a collection, and its guard against
doing it twice never matches (it compares the wrapper's name, which `functools.wraps` has
overwritten with the original's). Every embedded collection ever opened adds one more layer:
after about 850 (a test suite's worth of app instances) a bulk update raised RecursionError.

`install()` replaces that patch function with one that wraps once."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from importlib.metadata import version as distribution_version
from typing import Any

from mongomock.collection import BulkOperationBuilder
from pymongo_async_mock import patches

from gql_chat.platform.versions import UnsupportedVersion, require_versions

SUPPORTED_PYMONGO_ASYNC_MOCK = ("0.1.",)
"""The versions whose `_patch_bulk_update_sort` this module was checked against."""
DROPS_SORT = "_gql_chat_drops_sort"


def _bulk_update_without_sort(collection: Any) -> Any:
    """pymongo-async-mock's `_patch_bulk_update_sort`, applied once per process."""
    original: Callable[..., Any] = BulkOperationBuilder.add_update
    if getattr(original, DROPS_SORT, False):
        return collection

    @wraps(original)
    def add_update(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("sort", None)
        return original(*args, **kwargs)

    setattr(add_update, DROPS_SORT, True)
    BulkOperationBuilder.add_update = add_update  # type: ignore[method-assign]
    return collection


def require_supported_versions() -> None:
    require_versions(
        __name__,
        {"pymongo-async-mock": SUPPORTED_PYMONGO_ASYNC_MOCK},
        {"pymongo-async-mock": distribution_version("pymongo-async-mock")},
    )
    if not callable(getattr(patches, "_patch_bulk_update_sort", None)):
        raise UnsupportedVersion("pymongo-async-mock has no _patch_bulk_update_sort()")


def install() -> None:
    require_supported_versions()
    patches._patch_bulk_update_sort = _bulk_update_without_sort
