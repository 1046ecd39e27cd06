"""Index creation shared by every repository."""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection


async def ensure_indexes(
    collection: AsyncCollection[dict[str, Any]], models: list[IndexModel]
) -> None:
    """One `create_index` per model (idempotent on MongoDB). Not `create_indexes`: the embedded
    store's version drops options such as `partialFilterExpression`."""
    for model in models:
        spec = dict(model.document)
        keys = list(spec.pop("key").items())
        await collection.create_index(keys, **spec)
